"""A windowed view's whole history written at once, for a full materialization.

Replaying history through the incremental executor costs one Lua script per entity and a Redis
call per tile update. A full run starts from a cleared view, so nothing needs checking against
stored state: this module computes in polars the state that replay leaves (each entity's events
as one group, as the replay sends them) and writes it with plain pipelined commands:

- ``seen``: every counted event id, scored by its lateness deadline, and the high-water mark
  (the entity's earliest ingest time, as a replay in arrival order sets it); it expires when
  the replay's script would expire it;
- tiles: each (key, field) set to its merged partial (``merged_updates``, the executor's own
  merge), ``last`` as its order and value fields, distinct values added to their sets; each key
  expires when no window can read it any more, as the script's ``ttl``. On Redis 7 a tile is one
  ``RESTORE`` with its expiry (stores/redis_dump.py); a refused one, and a tile too big for a
  listpack, an ``HSET`` and a ``PEXPIRE``.

The ``latest`` keys are set by the caller, as for a replay. tests/online/test_history.py checks
that this state equals the replay's, key by key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import redis

from skewless._errors import StoreError
from skewless.stores.bulk import (
    Restores,
    frame_commands,
    pack_commands,
    pack_grouped,
    restored_or,
    run_bulk,
    text_column,
)
from skewless.stores.byte_columns import BYTES, decimal_text
from skewless.stores.redis_dump import grouped_hash_payloads, restores_hashes
from skewless.stores.redis_layout import HWM_MEMBER, SEEN_KEY
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.tile_updates import ORDER_SEP, counted_events, merged_updates, state_keys

__all__ = ["write_history"]

_BATCH = 20_000  # commands per round trip
_CHUNK = 20_000  # events per chunk: its commands are built while Redis runs the chunk before
_EMPTY = pa.array([], BYTES)


def write_history(
    client: redis.Redis,
    plan: ViewPlan,
    events: pl.DataFrame,
    *,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Write the state of ``events`` (source columns, ``__ingest_us``, ``__ord`` and optionally
    ``__entry``; each entity's together, in arrival order) into a cleared view; returns the number
    of counted events. ``on_progress(done, total)`` counts events as their commands go out."""
    counted, _ = counted_events(plan, events)
    restore = restores_hashes(client)

    def batches() -> Iterator[pa.Array | Restores]:
        for chunk in _entity_chunks(counted):
            for packed in _commands(plan, chunk, restore=restore):
                for start in range(0, len(packed), _BATCH):
                    yield packed.slice(start, _BATCH)
            on_progress(int(chunk["__end"][0]), counted.height)

    try:
        run_bulk(client, batches())
    except redis.RedisError as exc:
        raise StoreError(f"view '{plan.name}': writing to Redis failed: {exc}") from exc
    return counted.height


def _entity_chunks(counted: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """About ``_CHUNK`` events at a time, an entity never split (its keys are its own), each
    with ``__end``: the events up to the chunk's end."""
    if not counted.height:
        return
    first = np.flatnonzero((counted["__tag"] != counted["__tag"].shift(1)).fill_null(True).to_numpy())
    cuts = np.unique(first[np.searchsorted(first, np.arange(0, counted.height, _CHUNK))])
    for start, end in zip(cuts, [*cuts[1:], counted.height], strict=True):
        yield counted.slice(start, end - start).with_columns(__end=pl.lit(end))


def _commands(plan: ViewPlan, chunk: pl.DataFrame, *, restore: bool) -> list[pa.Array | Restores]:
    """The commands that leave one chunk's entities as the replay would."""
    frame = chunk.lazy().with_columns(
        __group=pl.col("__tag"), __now=pl.col("__ingest_us").min().over("__tag")
    )
    updates = merged_updates(plan, frame, chunk.schema).with_columns(key=state_keys(plan, pl.col("__group")))
    return [*_bookkeeping(plan, chunk), *_tile_commands(updates.collect(), restore=restore)]


def _bookkeeping(plan: ViewPlan, counted: pl.DataFrame) -> list[pa.Array]:
    """Each entity's ``seen`` set (its ids and high-water mark), as APPLY_SCRIPT leaves it
    after one call."""
    seen = pl.format(SEEN_KEY, "__tag")
    entities = counted.group_by("__tag").agg(
        pl.col("__ingest_us").min().alias("now"),
        (pl.col("__event_us").max() + plan.lateness_us).alias("seen_until"),
    )
    members = pl.concat([
        counted.select(
            seen.alias("key"),
            (pl.col("__event_us") + plan.lateness_us).alias("score"),
            pl.format("{}@{}", "__id", "__event_us").alias("member"),
        ),
        entities.select(seen.alias("key"), pl.col("now").alias("score"), pl.lit(HWM_MEMBER).alias("member")),
    ])  # fmt: skip
    keep = (pl.max_horizontal("seen_until", "now") - pl.col("now") + 999) // 1000 + 1  # the script's
    return [
        _grouped(b"ZADD", members, "score", "member")[0],
        frame_commands([b"PEXPIRE"], entities.with_columns(key=seen, keep=keep), "key", "keep"),
    ]


def _tile_commands(updates: pl.DataFrame, *, restore: bool) -> list[pa.Array | Restores]:
    """Each tile's fields in one HSET, each set's values in one SADD, then each key's expiry
    (a key must exist to expire); with ``restore``, a tile small enough is one RESTORE with its
    expiry instead (stores/redis_dump.py). Sets stay SADDs: restoring them too saved Redis 3%
    of its CPU and no time (by hand, 5 alternating runs of the benchmark's full run)."""
    last = pl.col("op").str.starts_with("last")
    latest = updates.filter(last).with_columns(
        pl.col("value").str.splitn(ORDER_SEP, 2).struct.rename_fields(["order", "last"]).struct.unnest()
    )
    fields = pl.concat([
        updates.filter(~last & (pl.col("op") != "sadd")).select("key", "field", "value", "ttl"),
        latest.select("key", pl.col("field") + ".o", pl.col("order").alias("value"), "ttl"),
        latest.select("key", pl.col("field") + ".v", pl.col("last").alias("value"), "ttl"),
    ])  # fmt: skip
    sets, set_expiry = _grouped(b"SADD", updates.filter(pl.col("op") == "sadd"), "value")
    if restore:
        return [*_restored_hashes(fields), sets, set_expiry]
    hashes, hash_expiry = _grouped(b"HSET", fields, "field", "value")
    return [hashes, sets, hash_expiry, set_expiry]


def _restored_hashes(fields: pl.DataFrame) -> list[pa.Array | Restores]:
    """A RESTORE with its expiry of each tile whose hash is small; the others, and any tile
    Redis refuses to restore, by HSET and PEXPIRE (``_grouped``)."""
    rows, starts, keys = _key_groups(fields)
    payloads = grouped_hash_payloads(text_column(rows, "field"), text_column(rows, "value"), starts)

    def written(positions: np.ndarray) -> pa.Array:
        chosen = fields.filter(pl.col("key").is_in(pl.Series(keys.take(pa.array(positions))).implode()))
        return pa.concat_arrays(list(_grouped(b"HSET", chosen, "field", "value")))

    return restored_or(keys, decimal_text(pa.array(_longest_ttl(rows, starts))), payloads, written)


def _grouped(command: bytes, frame: pl.DataFrame, *columns: str) -> tuple[pa.Array, pa.Array]:
    """One ``command`` per ``key`` of ``frame``, with the ``columns`` of every row of that key;
    and, when ``frame`` has ``ttl``, a PEXPIRE of each key to its longest."""
    rows, starts, keys = _key_groups(frame)
    packed = pack_grouped([command, keys], [text_column(rows, c) for c in columns], starts)
    if "ttl" not in rows.columns:
        return packed, _EMPTY
    return packed, pack_commands([b"PEXPIRE", keys, decimal_text(pa.array(_longest_ttl(rows, starts)))])


def _key_groups(frame: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, pa.Array]:
    """``frame``'s rows by ``key``, where each key's rows begin (then the row count), and the keys."""
    rows = frame.sort("key")
    first = (rows["key"] != rows["key"].shift(1)).fill_null(True)  # where a key begins
    starts = np.r_[np.flatnonzero(first.to_numpy()), rows.height]
    return rows, starts, rows["key"].filter(first).to_arrow()


def _longest_ttl(rows: pl.DataFrame, starts: np.ndarray) -> np.ndarray:
    """Each key's longest ``ttl``: how long the key must live."""
    if len(starts) < 2:
        return np.array([], np.int64)
    return np.maximum.reduceat(rows["ttl"].to_numpy(), starts[:-1])
