"""Materialization: load history into the online store, fully or from the last watermark.

A full run recomputes everything as of now: plain views get each entity's latest row (in
Feast's format); windowed views are cleared, every entity's latest event time is set, and the
state the events still inside some window leave is written in bulk (online/history.py: what a
replay through the incremental executor would leave, without a script per entity). Re-running
an interrupted full run simply starts over. A ranged run does the same with the events of an
event-time range, except that a plain view keeps a stored row newer than the range's
(docs/semantics.md §9). An incremental run applies the events ingested since the watermark; if
it is interrupted, re-running it re-applies them, and the recorded event ids make that a no-op
for those already applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import polars as pl
import redis

from skewless._errors import ConfigError
from skewless.online.consumers import alive
from skewless.online.history import write_history
from skewless.online.plain import plain_rows, write_plain_rows
from skewless.stores.bulk import frame_commands, run_bulk
from skewless.stores.redis_layout import LATEST_KEY, entity_tag_expr
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.incremental import IncrementalExecutor

__all__ = ["MaterializeResult", "check_alone", "check_start", "clear_view", "materialize_view"]

_REPLAY_BATCH = 20_000
#: What a replay passes on besides the source's columns: arrival, and the stream entry that
#: identifies an event without an id of its own as the ingest that applied it did (§3).
_REPLAYED = ("__ingest_us", "__ord", "__entry")
Progress = Callable[[int, int], None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MaterializeResult:
    """Rows (plain views) or events (windowed views) written, and the new watermark (ingest µs;
    None after a ranged run, which sets none)."""

    view: str
    written: int
    watermark_us: int | None


def clear_view(client: redis.Redis, plan: ViewPlan) -> int:
    """Delete a windowed view's online state; returns the number of keys removed."""
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"skl:{{{plan.name}|*", count=5_000):
        batch.append(key)
        if len(batch) == 5_000:
            removed += cast(int, client.delete(*batch))
            batch = []
    return removed + (cast(int, client.delete(*batch)) if batch else 0)


def _available(events: pl.DataFrame, low_us: int | None, now_us: int) -> pl.DataFrame:
    mask = pl.col("__ingest_us") <= now_us
    if low_us is not None:
        mask &= pl.col("__ingest_us") > low_us
    return events.filter(mask)


def _set_latest(client: redis.Redis, plan: ViewPlan, events: pl.DataFrame, now_us: int) -> None:
    """Each entity's latest event time, kept twice the view's TTL (forever without one)."""
    latest = (
        events.group_by(list(plan.join_keys))
        .agg(pl.col("__event_us").max())
        .select(pl.format(LATEST_KEY, entity_tag_expr(plan.name, plan.join_keys)).alias("key"), "__event_us")
    )
    if plan.ttl_us is None:
        commands = frame_commands([b"SET"], latest, "key", "__event_us")
    else:
        ttl_ms = (pl.col("__event_us") + 2 * plan.ttl_us - now_us) // 1000
        live = latest.with_columns(ttl=ttl_ms).filter(pl.col("ttl") > 0)
        commands = frame_commands([b"PSETEX"], live, "key", "ttl", "__event_us")
    run_bulk(client, [commands])


def check_start(plan: ViewPlan, start_us: int, now_us: int) -> None:
    """Refuse a range that starts too late for a windowed view's windows to be whole at
    ``now_us`` (docs/semantics.md §9): its online values would differ from every training set."""
    latest_start_us = now_us - plan.max_window_us
    if plan.kind == "feature_view" and start_us > latest_start_us:
        raise ConfigError(
            f"start {_iso(start_us)} would cut the windows of view '{plan.name}' short (online values "
            f"would differ from training); start at {_iso(latest_start_us)} or earlier, or leave the view out."
        )


def check_alone(client: redis.Redis, plan: ViewPlan) -> None:
    """Refuse to clear a windowed view while `skewless ingest` writes it: what ingest applies
    between this run's read of the history and its writes would be lost."""
    consumers = _ingesting(client, plan) if plan.kind == "feature_view" else []
    if consumers:
        raise ConfigError(
            f"view '{plan.name}': skewless ingest ({', '.join(consumers)}) is applying stream "
            f"'{plan.source.stream}' to it, and a full run clears the view's online state, losing what "
            "ingest writes meanwhile; stop ingest (it resumes where it left off), run this and start "
            "it again, or run materialize --incremental."
        )


def _ingesting(client: redis.Redis, plan: ViewPlan) -> list[str]:
    """The live `skewless ingest` consumers of the view's source's stream."""
    return [] if plan.source.stream is None else alive(client, str(plan.source.stream))


def _iso(us: int) -> str:
    """``us`` as an ISO time, down to the second (an earlier start is always accepted)."""
    return (_EPOCH + timedelta(seconds=us // 1_000_000)).isoformat()


def materialize_view(
    batch: BatchExecutor,
    client: redis.Redis,
    plan: ViewPlan,
    project: str,
    *,
    now_us: int,
    watermark_us: int | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    on_progress: Progress = lambda done, total: None,
) -> MaterializeResult:
    """Bring the view's online state up to ``now_us``: from ``watermark_us`` if given, else from
    the events of event time ``start_us`` to ``end_us`` (default: all), both included."""
    ranged = start_us is not None or end_us is not None
    until_us = now_us if end_us is None else min(end_us, now_us)
    history = batch.events(plan, since_us=start_us, until_us=until_us, transform=False)
    events = _available(history, watermark_us, now_us)
    applied_until = int(events["__ingest_us"].max()) if events.height else watermark_us  # type: ignore[arg-type]
    new_watermark = None if ranged else applied_until
    if plan.kind == "plain_view":
        # A run that read rows older than what a running ingest writes keeps the newer.
        compare = watermark_us is not None or ranged or bool(_ingesting(client, plan))
        rows = plain_rows(plan, events, compare=compare)
        written = write_plain_rows(
            client, plan, project, rows, newer_only=compare, on_batch=lambda n: on_progress(n, rows.height)
        )
        return MaterializeResult(plan.name, written, new_watermark)
    # Each entity's events together, in arrival order: the bulk writer needs it, and a replay
    # batch then costs one script per entity in it, not one per batch its events spread over.
    events = events.sort([*plan.join_keys, "__ingest_us", "__ord"])
    if watermark_us is None:
        clear_view(client, plan)
        _set_latest(client, plan, events, now_us)
        recent = events.filter(pl.col("__event_us") >= now_us - plan.max_window_us)
        written = write_history(
            client, plan, recent.select(*plan.source.columns, *_REPLAYED), on_progress=on_progress
        )
        return MaterializeResult(plan.name, written, new_watermark)
    executor = IncrementalExecutor(client, project=project)
    applied = 0
    for start in range(0, events.height, _REPLAY_BATCH):
        chunk = events.slice(start, _REPLAY_BATCH).select(*plan.source.columns, *_REPLAYED)
        applied += executor.apply([plan], chunk).applied.get(plan.name, 0)
        on_progress(min(start + _REPLAY_BATCH, events.height), events.height)
    return MaterializeResult(plan.name, applied, new_watermark)
