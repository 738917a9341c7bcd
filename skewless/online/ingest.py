"""Streaming ingestion: Redis Streams → the incremental executor, at least once, exactly one effect.

Each event source with a ``stream`` is consumed by the consumer group ``skewless``; several
``skewless ingest`` processes share the work. A batch is acknowledged only after (1) the online
writes succeeded and (2) its events landed in the offline history (``data/stream/<source>/…
parquet``, with their ingest time). A crash before the ack means redelivery; the recorded event
ids make the second application a no-op (transforms/incremental.py). Entries that cannot be
parsed, and events that do not count (too late, missing keys), go to ``<stream>:dead`` with the
reason (online/dead_letters.py: the newest are kept, all are counted). Entries every consumer
group has acknowledged are trimmed from the stream, once a second (stores/stream_trim.py).
A consumer that loses Redis waits for it and goes on (``StreamIngestor.run``). How an entry
becomes an event: online/stream_entries.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import polars as pl
import redis

from skewless._errors import StoreError
from skewless.online.consumers import alive, forget, forget_idle, mark_alive, mark_gone
from skewless.online.dead_letters import DEAD_LETTER_MAX, Rejected, add_dead_letters
from skewless.online.stream_entries import CLOCK_SLACK_US, Entry, parse_entries
from skewless.stores.redis_outages import ride_out_outages
from skewless.stores.stream_trim import entry_position, trim_acknowledged
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.incremental import IncrementalExecutor, PreparedBatch
from skewless.transforms.sources import EventSource

__all__ = ["GROUP", "IngestStats", "StreamIngestor"]

GROUP = "skewless"


@dataclass
class IngestStats:
    """Counters an ingest process exposes (and `skewless ingest` prints)."""

    batches: int = 0
    events: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    last_lag: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Batch:
    """Entries read from one source's stream, parsed and prepared, not yet written."""

    source: EventSource
    entries: list[Entry]
    frame: pl.DataFrame  # the parsed entries
    bad: list[Rejected]
    prepared: PreparedBatch | None


class StreamIngestor:
    """Consumes the streams of some sources into Redis state and the offline history."""

    def __init__(
        self,
        client: redis.Redis,
        repo_root: Path,
        plans_by_source: dict[str, tuple[EventSource, list[ViewPlan]]],
        *,
        project: str,
        consumer: str | None = None,
        batch_size: int = 500,
        block_ms: int = 200,
        claim_idle_ms: int = 30_000,
        trim_every_s: float = 1.0,
        dead_letter_max: int = DEAD_LETTER_MAX,
        linger_s: float = 0.0,
    ) -> None:
        self.client = client
        # The same connections, replies left as hiredis reads them: redis-py's parsing of a
        # batch of entries into dicts cost more than reading them.
        self._raw = redis.Redis(connection_pool=client.connection_pool)
        self._raw.response_callbacks = {}  # type: ignore[assignment]  # redis-py types it as its own dict class
        self.repo_root = repo_root
        self.sources = plans_by_source
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self._next_claim: dict[str, float] = {}  # per stream: when to look for a dead consumer's entries
        self.trim_every_s = trim_every_s
        self.dead_letter_max = dead_letter_max
        self.linger_s = linger_s
        self._next_trim: dict[str, float] = {}  # per stream: when to trim it next
        self._next_mark = 0.0  # when to mark this consumer alive next
        self.executor = IncrementalExecutor(client, project=project)
        self.stats = IngestStats()
        self._ensure_groups()

    def _ensure_groups(self) -> None:
        for source, _ in self.sources.values():
            try:
                self.client.xgroup_create(str(source.stream), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise StoreError(
                        f"cannot create consumer group on stream '{source.stream}': {exc}"
                    ) from exc

    def run(
        self,
        *,
        until: Callable[[], bool] = lambda: False,
        on_outage: Callable[[str], None] = lambda message: None,
    ) -> IngestStats:
        """Consume until ``until()`` is true (a signal handler, a test, a deadline).

        When Redis cannot be reached (it restarts, fails over), the loop waits for it, trying
        once a second, then goes on from this consumer's unacknowledged entries: the batch that
        failed is read again and its writes that had landed count once, as after a restart of
        the process. ``on_outage`` hears, in a line, when Redis goes and when it is back."""
        try:
            ride_out_outages(
                self.client,
                lambda: self._consume(until),
                until=until,
                on_outage=on_outage,
                on_back=self._ensure_groups,
            )
        finally:
            self.close()
        return self.stats

    def _consume(self, until: Callable[[], bool]) -> None:
        """Two stages: while one batch is written to Redis, landed offline and acknowledged (a
        writer thread), the next is read, parsed and prepared. Writes and acks keep their order,
        and a failed write stops the loop with its error: nothing is acknowledged unwritten.

        With ``linger_s``, a batch short of full is followed by a wait until that long after it
        was read, so that the next gathers what arrives meanwhile: a small batch costs about as
        much CPU as one of a few hundred events (docs/architecture.md, "Streams"), so at low
        rates fewer, larger batches cost less, each event waiting up to ``linger_s`` longer."""
        wake: dict[str, float] = {}  # per stream: when to read after a batch short of full
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="skewless-writer") as writer:
            in_flight: Future[None] | None = None
            while not until():
                self._mark_alive()
                for source, plans in self.sources.values():
                    stream = str(source.stream)
                    if stream in wake:
                        time.sleep(max(0.0, wake.pop(stream) - time.monotonic()))
                    read_at = time.monotonic()
                    # This consumer's unacknowledged entries include the batch being written.
                    batch = self._prepare(source, plans, own_pending=in_flight is None)
                    if self.linger_s and batch and len(batch.entries) < self.batch_size:
                        wake[stream] = read_at + self.linger_s
                    if in_flight is not None:
                        in_flight.result()
                    in_flight = writer.submit(self._finish, batch) if batch else None
            if in_flight is not None:
                in_flight.result()

    def close(self) -> None:
        """Say this consumer stopped (``run`` does when it returns): full materializations of
        its streams' views may run again, and it leaves the consumer group unless it holds
        pending entries, which a live consumer claims (online/consumers.py). When Redis cannot
        take it (away, full, a replica), the mark is left to go stale, which says the same a few
        seconds later, and a live consumer removes it from the group."""
        with contextlib.suppress(redis.RedisError):
            for source, _ in self.sources.values():
                mark_gone(self.client, str(source.stream), self.consumer)
                forget(self.client, str(source.stream), GROUP, self.consumer)

    def _mark_alive(self) -> None:
        """Tell full materializations, once a second, that this consumer writes its streams'
        views (online/consumers.py)."""
        if time.monotonic() >= self._next_mark:
            self._next_mark = time.monotonic() + 1.0
            for source, _ in self.sources.values():
                mark_alive(self.client, str(source.stream), self.consumer)

    def step(self) -> int:
        """Read, apply and acknowledge one batch per source, without overlap (tests, tools)."""
        self._mark_alive()
        handled = 0
        for source, plans in self.sources.values():
            batch = self._prepare(source, plans)
            if batch is not None:
                self._finish(batch)
                handled += len(batch.entries)
        return handled

    def _next_entries(self, stream: str, *, own_pending: bool) -> list[Entry]:
        """First entries this consumer read but never acknowledged (when ``own_pending``), then
        entries another consumer left unacknowledged for longer than ``claim_idle_ms`` (it died),
        then new ones."""
        if own_pending:
            pending = self._read(stream, "0")
            if pending:
                return pending
        return self._claim(stream) or self._read(stream, ">", block=True)

    def _claim(self, stream: str) -> list[Entry]:
        """Entries a dead consumer left. Looked for again right away after finding some, else a
        quarter of ``claim_idle_ms`` later: XAUTOCLAIM scans the group's pending entries, and
        under the 20,000 events/s benchmark one call took about 4 ms of Redis (every other
        client waiting meanwhile), when it still ran before every batch. When there is nothing
        to claim, consumers idle that long, holding nothing pending and not marked alive, are
        removed from the group."""
        if time.monotonic() < self._next_claim.get(stream, 0.0):
            return []
        claimed = self._raw.execute_command(  # type: ignore[no-untyped-call]
            "XAUTOCLAIM", stream, GROUP, self.consumer, self.claim_idle_ms, "0-0", "COUNT", self.batch_size
        )
        entries = [(entry_id, fields) for entry_id, fields in claimed[1] if fields is not None]
        if not entries:  # nothing left to claim: the dead consumers can leave the group
            self._next_claim[stream] = time.monotonic() + self.claim_idle_ms / 4000
            living = set(alive(self.client, stream))  # a live one on a quiet stream may look idle
            forget_idle(self.client, stream, GROUP, idle_ms=self.claim_idle_ms, keep=living)
        return entries

    def _read(self, stream: str, since: str, *, block: bool = False) -> list[Entry]:
        waiting = ("BLOCK", self.block_ms) if block else ()
        reply = self._raw.execute_command(  # type: ignore[no-untyped-call]
            "XREADGROUP",
            "GROUP",
            GROUP,
            self.consumer,
            "COUNT",
            self.batch_size,
            *waiting,
            "STREAMS",
            stream,
            since,
        )
        return [(entry_id, fields) for entry_id, fields in reply[0][1]] if reply else []

    def _prepare(
        self, source: EventSource, plans: list[ViewPlan], *, own_pending: bool = True
    ) -> _Batch | None:
        """The next batch of ``source``: read, parsed, its writes prepared."""
        entries = self._next_entries(str(source.stream), own_pending=own_pending)
        if not entries:
            return None
        frame, bad = parse_entries(source, entries, first_ord=_entry_ord(entries[0][0]))
        prepared = None
        if frame.height:
            low_us = self._pending_since(str(source.stream), int(frame["__ingest_us"].min()))  # type: ignore[arg-type]
            prepared = self.executor.prepare(plans, frame, low_us=low_us)
        return _Batch(source, entries, frame, bad, prepared)

    def _pending_since(self, stream: str, batch_us: int) -> int:
        """An ingest time no event still to be delivered precedes: the batch's earliest, or the
        group's oldest pending entry (another consumer's batch, not yet written), less a second
        for a producer that stamped an entry's ``__ingest_us`` on a clock behind Redis's."""
        oldest = cast(dict[str, Any], self.client.xpending(stream, GROUP))["min"]
        if oldest is None:
            return batch_us
        millis, _ = entry_position(oldest)
        return min(batch_us, millis * 1000 - CLOCK_SLACK_US)

    def _finish(self, batch: _Batch) -> None:
        """Write the batch online, land it offline, dead-letter what does not count, then
        acknowledge it. Online first: its events become visible without waiting for the file;
        a crash before the ack redelivers the batch, whose online writes then change nothing
        and whose file is written again under the same name."""
        stream = str(batch.source.stream)
        result = self.executor.run(batch.prepared) if batch.prepared is not None else None
        self._land_offline(batch.source, batch.frame)
        letters = list(batch.bad)
        if result is not None and result.rejected is not None:
            letters += [
                Rejected(row["__entry"], _as_fields(batch.source, row), row["__reason"])
                for row in result.rejected.iter_rows(named=True)
            ]
        pipe = self.client.pipeline()  # MULTI: the dead letters, their counts and the ack, or none
        add_dead_letters(pipe, stream, letters, keep=self.dead_letter_max)
        pipe.xack(stream, GROUP, *[entry_id for entry_id, _ in batch.entries])
        pipe.execute()
        self.stats.batches += 1
        self.stats.events += len(batch.entries)
        self.stats.dead_lettered += len(letters)
        if result is not None:
            self.stats.applied += max(result.applied.values(), default=0)
            self.stats.duplicates += result.duplicates
        if time.monotonic() >= self._next_trim.get(stream, 0.0):
            self._next_trim[stream] = time.monotonic() + self.trim_every_s
            trim_acknowledged(self.client, stream)

    def _land_offline(self, source: EventSource, frame: pl.DataFrame) -> None:
        """Append the batch to the source's offline stream history, with its ingest time.

        One file per batch named by its first entry, so a redelivered batch overwrites itself."""
        if not frame.height:
            return
        directory = self.repo_root / source.stream_history
        directory.mkdir(parents=True, exist_ok=True)
        name = directory / f"{frame['__entry'][0].replace('-', '_')}.parquet"
        if source.ingest_time is not None:  # the offline executor's lateness uses the same clock
            frame = frame.with_columns(
                pl.col("__ingest_us").cast(pl.Datetime("us", "UTC")).alias(source.ingest_time)
            )
        frame.select(*source.columns, "__entry").write_parquet(name.with_suffix(".tmp"))
        name.with_suffix(".tmp").replace(name)

    def lag(self) -> dict[str, int]:
        """Entries not yet delivered to the group, per stream (Redis ≥ 7 reports it)."""
        lags = {}
        for source, _ in self.sources.values():
            groups = cast(list[dict[str, Any]], self.client.xinfo_groups(str(source.stream)))
            info = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
            lags[str(source.stream)] = int(info.get("lag") or 0) if info else 0
        self.stats.last_lag = lags
        return lags


def _entry_ord(entry_id: bytes) -> int:
    """A stream position that orders like the entry id (milliseconds, then sequence)."""
    millis, sequence = entry_position(entry_id)
    return millis * 1_000_000 + sequence


def _as_fields(source: EventSource, row: dict[str, Any]) -> dict[str, str]:
    return {
        c: "" if row.get(c) is None else (row[c].isoformat() if isinstance(row[c], datetime) else str(row[c]))
        for c in source.columns
    }
