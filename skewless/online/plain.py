"""Plain views online: write latest rows in Feast's format, read them back with statuses."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import redis

from skewless._errors import StoreError
from skewless.stores.bulk import Restores, pack_commands, restored_or, run_bulk
from skewless.stores.byte_columns import decimal_text
from skewless.stores.feast_format import (
    WRITE_SCRIPT,
    encode_entity_keys,
    encode_timestamps,
    encode_values,
    entity_key_encoder,
    feature_field,
    mark_field,
    timestamp_us,
    ts_field,
    value_decoder,
)
from skewless.stores.online_read import (
    NOT_FOUND,
    NULL_VALUE,
    OUTSIDE_MAX_AGE,
    PRESENT,
    ViewColumns,
    ViewRead,
)
from skewless.stores.redis_dump import hash_payloads, restores_hashes
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.dtypes import dtype_name
from skewless.transforms.events import event_identity

__all__ = ["encoded_batches", "first_load", "plain_rows", "plain_view_read", "write_plain_rows"]

_WRITE_SHA = hashlib.sha1(WRITE_SCRIPT.encode()).hexdigest().encode()
#: Rows per round trip (about 1 MB of commands for a 6-feature view). Redis ends the run by
#: running the last batch; since a first load's RESTOREs halved Redis's part, 5,000 rows instead
#: of 10,000 ran the 100,000-row benchmark in a median 0.264 s instead of 0.274 (20 alternating
#: fresh runs, by hand, 2026-11-29).
_BATCH = 5_000
_FIRST_BATCH = 1_000
_SEPARATOR = "\x1f"  # between a mark's parts, as WRITE_SCRIPT reads them


def plain_rows(plan: ViewPlan, events: pl.DataFrame, *, compare: bool) -> pl.DataFrame:
    """What to write for ``events`` (counted, in any order): each entity's latest row — greatest
    event time, then ingest time, then arrival.

    When the view's source has a stream, rows race (``skewless ingest`` and materializations
    each write some) and carry a mark (``__mark``, ``WRITE_SCRIPT``): with ``compare``, every row
    at its entity's latest event time, oldest arrival first, each marked with its own identity,
    so the script skips the copies of events already counted; without (a full run overwrites),
    the latest row, marked with every event at that time."""
    keys = list(plan.join_keys)
    if plan.source.stream is None:
        return _latest(keys, events)
    at_latest = events.filter(pl.col("__event_us") == pl.col("__event_us").max().over(keys))
    at_latest = at_latest.with_columns(__identity=_escaped(event_identity(plan, events.columns)))
    arrival = [pl.col(c).cast(pl.String).str.zfill(20) for c in ("__ingest_us", "__ord")]
    mark = pl.concat_str([*arrival, pl.lit(_SEPARATOR), pl.col("__identity")])
    if compare:
        return at_latest.sort("__ingest_us", "__ord").with_columns(__mark=mark).drop("__identity")
    everyone = at_latest.group_by(keys).agg(pl.col("__identity").str.join(_SEPARATOR))
    return (
        _latest(keys, at_latest.drop("__identity"))
        .join(everyone, on=keys, how="left", maintain_order="left")
        .with_columns(__mark=mark)
        .drop("__identity")
    )


def _escaped(identity: pl.Expr) -> pl.Expr:
    """An identity as a mark holds it: without the separator (``%`` → ``%25``, ``\\x1f`` →
    ``%1F``), so that an event id holding one is still found, and is not split in two."""
    return identity.str.replace_all("%", "%25", literal=True).str.replace_all(_SEPARATOR, "%1F", literal=True)


def _latest(keys: list[str], events: pl.DataFrame) -> pl.DataFrame:
    """Each entity's latest row. A table of current values (one row per entity, as the
    benchmark's profiles) is its own answer: checking that costs 2 ms for 100,000 rows (22 ms
    for 1M: 58 ms counted as structs), where sorting and grouping them cost 20-25."""
    if events.select(keys).n_unique() == events.height:
        return events
    return events.sort("__event_us", "__ingest_us", "__ord").group_by(keys, maintain_order=True).last()


def write_plain_rows(
    client: redis.Redis,
    plan: ViewPlan,
    project: str,
    rows: pl.DataFrame,
    *,
    newer_only: bool = True,
    on_batch: Callable[[int], None] = lambda n: None,
) -> int:
    """Write each row (join keys, features, ``__event_us``) as its entity's current value.

    ``newer_only`` writes through ``WRITE_SCRIPT``, which keeps the stored row when it wins
    (docs/semantics.md §6; rows from ``plain_rows(compare=True)``); a full materialization,
    which computed the latest rows itself, overwrites directly.
    """

    restore = not newer_only and first_load(client, plan, project, rows)

    def write() -> int:
        batches = encoded_batches(plan, project, rows, newer_only=newer_only, restore=restore)
        return run_bulk(client, batches, on_batch=on_batch)

    try:
        try:
            return write()
        except redis.ResponseError as exc:
            if not (newer_only and str(exc).startswith("NOSCRIPT")):
                raise
            # Redis lacks the script (it restarted, or this is its first compare write): load it
            # and write every row again: the script leaves a row it already wrote as it is.
            client.script_load(WRITE_SCRIPT)
            return write()
    except redis.RedisError as exc:
        raise StoreError(f"view '{plan.name}': writing to Redis failed: {exc}") from exc


def first_load(client: redis.Redis, plan: ViewPlan, project: str, rows: pl.DataFrame) -> bool:
    """Whether to write ``rows`` by ``RESTORE`` (stores/redis_dump.py): Redis loads listpacks
    and none of the first batch's keys exist, as in a first load. Where keys exist, each
    ``RESTORE`` would be refused and the row written by ``HSET`` after all."""
    if not rows.height or not restores_hashes(client):
        return False
    keys = encode_entity_keys(rows.head(_FIRST_BATCH), plan.join_keys, plan.key_dtypes, project)
    return client.exists(*keys.to_pylist()) == 0


def encoded_batches(
    plan: ViewPlan, project: str, rows: pl.DataFrame, *, newer_only: bool, restore: bool = False
) -> Iterator[pa.Array | Restores]:
    """The packed commands that write ``rows``, a batch at a time (encoded as they are asked for,
    so encoding overlaps with Redis running the batch before); with ``restore`` (and not
    ``newer_only``), ``RESTORE`` where a row's hash is small enough."""
    head = [b"EVALSHA", _WRITE_SHA, b"1"] if newer_only else [b"HSET"]
    start = 0
    while start < rows.height:
        # A small first batch: Redis starts on it while the next, full-size one is encoded.
        size = _FIRST_BATCH if start == 0 else _BATCH
        chunk = rows.slice(start, size)
        start += size
        if restore and not newer_only:
            yield from _restores(plan, project, chunk)
        else:
            yield pack_commands([*head, *_row_args(plan, project, chunk, newer_only=newer_only)])


def _restores(plan: ViewPlan, project: str, rows: pl.DataFrame) -> list[pa.Array | Restores]:
    """``RESTORE`` of each row whose hash is small (a row Redis refuses is written by ``HSET``
    instead), then ``HSET`` of the others."""
    key, *pairs = _row_args(plan, project, rows, newer_only=False)
    assert isinstance(key, pa.Array)
    fields = [f for f in pairs[::2] if isinstance(f, bytes)]
    payloads = hash_payloads(fields, [v for v in pairs[1::2] if isinstance(v, pa.Array)])
    if payloads is None:
        return [pack_commands([b"HSET", key, *pairs])]

    def hset(positions: np.ndarray) -> pa.Array:
        return pack_commands([b"HSET", *_row_args(plan, project, rows[positions], newer_only=False)])

    return restored_or(key, b"0", payloads, hset)


def _row_args(
    plan: ViewPlan, project: str, rows: pl.DataFrame, *, newer_only: bool
) -> list[bytes | pa.Array]:
    """The entity key, then field/value pairs, as ``HSET`` takes them, the mark among them when
    the rows have one; for ``WRITE_SCRIPT``, the ``_ts`` field's name, the event time in µs, and
    the mark's field and value (or two empty arguments) come before the pairs."""
    key = encode_entity_keys(rows, plan.join_keys, plan.key_dtypes, project)
    fields: list[bytes | pa.Array] = []
    for feature in plan.features:
        fields += [feature_field(plan.name, feature), encode_values(rows[feature])]
    fields += [ts_field(plan.name), encode_timestamps(rows["__event_us"])]
    mark: list[bytes | pa.Array] = []
    if "__mark" in rows.columns:
        mark = [mark_field(plan.name), rows["__mark"].to_arrow()]
    if not newer_only:
        return [key, *fields, *mark]
    return [
        key,
        ts_field(plan.name),
        decimal_text(rows["__event_us"].to_arrow()),
        *(mark or [b"", b""]),
        *fields,
    ]


def plain_view_read(plan: ViewPlan, project: str, entities: Sequence[Sequence[Any]], at_us: int) -> ViewRead:
    """The read of each entity's latest row, with TTL honoured (OUTSIDE_MAX_AGE), as of ``at_us``."""
    fields = [feature_field(plan.name, f) for f in plan.features] + [ts_field(plan.name)]
    key = entity_key_encoder(tuple(plan.join_keys), tuple(dtype_name(d) for d in plan.key_dtypes), project)
    commands: list[tuple[Any, ...]] = [("HMGET", key(entity), *fields) for entity in entities]
    decoders = [(f, value_decoder(dtype_name(d))) for f, d in plan.features.items()]
    oldest = None if plan.ttl_us is None else at_us - plan.ttl_us

    def decode(replies: Sequence[Any]) -> ViewColumns:
        return _columns(decoders, replies, oldest)

    return ViewRead(plan.name, commands, decode)


def _columns(
    decoders: list[tuple[str, Callable[[bytes | None], Any]]], replies: Sequence[Any], oldest: int | None
) -> ViewColumns:
    """Each HMGET reply is the features then the event time; column by column, without a dict
    per entity (a 100-entity read decodes 600 values)."""
    event_us = [None if reply[-1] is None else timestamp_us(reply[-1]) for reply in replies]
    row_status = [
        NOT_FOUND if us is None else OUTSIDE_MAX_AGE if oldest is not None and us < oldest else PRESENT
        for us in event_us
    ]
    live = [status is PRESENT for status in row_status]
    values, statuses = {}, {}
    for i, (feature, decode) in enumerate(decoders):
        column = [decode(reply[i]) if ok else None for reply, ok in zip(replies, live, strict=True)]
        values[feature] = column
        statuses[feature] = [
            NULL_VALUE if status is PRESENT and value is None else status
            for status, value in zip(row_status, column, strict=True)
        ]
    return ViewColumns(values, statuses, event_us)
