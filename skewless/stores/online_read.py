"""Read windowed features from Redis: merge the tiles in range, with an honest status per value.

Statuses are Feast's: PRESENT, NULL_VALUE (found, but the value is null), NOT_FOUND (the entity
has no counted event), OUTSIDE_MAX_AGE (its latest event is older than the view's TTL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
import redis

from skewless._errors import StoreError
from skewless.stores.redis_layout import entity_tag, latest_key, set_key, tile_key
from skewless.transforms.compiled import CompiledAggregation, ViewPlan
from skewless.transforms.dtypes import dtype_name

__all__ = [
    "NOT_FOUND",
    "NULL_VALUE",
    "OUTSIDE_MAX_AGE",
    "PRESENT",
    "OnlineRow",
    "parse_value",
    "read_feature_view",
]

PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"


@dataclass(frozen=True)
class OnlineRow:
    """One entity's features of one view: values, statuses, and its latest event time (µs)."""

    values: dict[str, Any]
    statuses: dict[str, str]
    event_us: int | None


def parse_value(raw: bytes | str | None, dtype: pl.DataType) -> Any:
    """A stored string back to the feature's Python type."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    name = dtype_name(dtype)
    if name in ("Int32", "Int64"):
        return int(float(text)) if "." in text or "e" in text else int(text)
    if name in ("Float32", "Float64"):
        return float(text)
    if name == "Boolean":
        return text == "1"
    if name == "Datetime":
        return datetime.fromtimestamp(int(text) / 1_000_000, UTC)
    return text


def _tiles(granularity_us: int, at_us: int, span_us: int) -> list[int]:
    """Tile starts a read at ``at_us`` may need for a granularity whose longest window is ``span_us``."""
    current = at_us - at_us % granularity_us
    return list(range(current - span_us, current + 1, granularity_us))


def _merge(
    agg: CompiledAggregation, index: int, hashes: list[dict[bytes, bytes]], members: set[bytes] | None
) -> Any:
    function = agg.aggregator.function
    if function == "distinct_count":
        return len(members or ())
    if function == "last":
        best = max(
            (
                (h[f"a{index}.o".encode()], h[f"a{index}.v".encode()])
                for h in hashes
                if f"a{index}.o".encode() in h
            ),
            default=None,
            key=lambda p: (p[0], parse_value(p[1], agg.input_dtype)),
        )
        return None if best is None else parse_value(best[1], agg.dtype)
    part = {"count": "n", "sum": "s", "mean": "s", "min": "m", "max": "m"}[function]
    values = [
        parse_value(h[f"a{index}.{part}".encode()], agg.dtype if function != "mean" else pl.Float64())
        for h in hashes
        if f"a{index}.{part}".encode() in h
    ]
    if function in ("count", "sum"):
        return sum(values) if values else agg.aggregator.empty
    if function == "mean":
        count = sum(int(h[f"a{index}.n".encode()]) for h in hashes if f"a{index}.n".encode() in h)
        return sum(values) / count if count else None
    return (min if function == "min" else max)(values, default=None)


def read_feature_view(
    client: redis.Redis, plan: ViewPlan, entities: Sequence[Sequence[Any]], at_us: int
) -> list[OnlineRow]:
    """The windowed features of ``plan`` for each entity key, as of ``at_us``."""
    pipe = client.pipeline(transaction=False)
    layout = []
    for entity in entities:
        tag = entity_tag(plan.name, entity)
        pipe.get(latest_key(tag))
        tiles = {g: _tiles(g, at_us, span) for g, span in plan.spans.items()}
        for g, starts in tiles.items():
            for start in starts:
                pipe.hgetall(tile_key(tag, g, start))
        for agg in plan.aggregations:
            if agg.aggregator.function == "distinct_count":
                low = at_us - at_us % agg.granularity_us - agg.window_us
                pipe.sunion([set_key(tag, agg.name, s) for s in tiles[agg.granularity_us] if s >= low])
        layout.append(tiles)
    try:
        replies = iter(pipe.execute())
    except redis.RedisError as exc:
        raise StoreError(f"view '{plan.name}': online read failed: {exc}") from exc
    return [_row(plan, tiles, replies, at_us) for tiles in layout]


def _row(plan: ViewPlan, tiles: dict[int, list[int]], replies: Any, at_us: int) -> OnlineRow:
    latest_raw = next(replies)
    hashes = {
        g: list(zip(starts, [next(replies) for _ in starts], strict=True)) for g, starts in tiles.items()
    }
    sets = {a.name: next(replies) for a in plan.aggregations if a.aggregator.function == "distinct_count"}
    latest = int(latest_raw) if latest_raw is not None else None
    if latest is None or (plan.ttl_us is not None and latest < at_us - plan.ttl_us):
        status = NOT_FOUND if latest is None else OUTSIDE_MAX_AGE
        return OnlineRow(
            {a.name: None for a in plan.aggregations}, {a.name: status for a in plan.aggregations}, latest
        )
    values, statuses = {}, {}
    for index, agg in enumerate(plan.aggregations):
        low = at_us - at_us % agg.granularity_us - agg.window_us
        in_range = [h for start, h in hashes[agg.granularity_us] if start >= low]
        value = _merge(agg, index, in_range, sets.get(agg.name))
        values[agg.name] = value
        statuses[agg.name] = PRESENT if value is not None else NULL_VALUE
    return OnlineRow(values, statuses, latest)
