"""The incremental executor: applies micro-batches of new events to online state in Redis.

It runs the same compiled plan as the batch executor: the events that count (semantics §3), the
same row-level transform, then per (view, entity) one atomic Lua script that checks and records
the event ids and updates the entity's tiles (stores/redis_layout.py). A crash can therefore
neither lose nor double-count an event: a redelivered batch either finds its ids recorded (and
changes nothing) or was never applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import redis

from skewless._errors import StoreError
from skewless.stores.redis_layout import (
    APPLY_SCRIPT,
    entity_tag,
    hwm_key,
    latest_key,
    seen_key,
    set_key,
    tile_key,
)
from skewless.transforms.compiled import CompiledAggregation, ViewPlan
from skewless.transforms.events import reject_reasons

__all__ = ["ApplyResult", "IncrementalExecutor"]

_SEP = "\x1f"


@dataclass
class ApplyResult:
    """What one batch did: events applied per view, duplicate events skipped, events rejected."""

    applied: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: pl.DataFrame | None = None


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _ops(
    plan: ViewPlan, events: list[dict[str, Any]], now_us: int
) -> tuple[dict[str, dict[tuple[str, str], Any]], set[str]]:
    """Tile updates for one entity's events, merged per (key, op, field): fewer commands, same state."""
    ops: dict[str, dict[tuple[str, str], Any]] = {}
    tag = entity_tag(plan.name, [events[0][k] for k in plan.join_keys])
    live: set[str] = set()
    for index, agg in enumerate(plan.aggregations):
        span = _span(plan, agg.granularity_us)
        for event in events:
            value = event["__event_us"] if agg.column is None else event[agg.column]
            if value is None:
                continue
            tile = event["__event_us"] - event["__event_us"] % agg.granularity_us
            if tile + span + agg.granularity_us <= now_us:
                continue  # no read at or after now can see this tile
            key = (
                set_key(tag, agg.name, tile)
                if agg.aggregator.function == "distinct_count"
                else tile_key(tag, agg.granularity_us, tile)
            )
            live.add(key)
            for op, name, item in _event_ops(agg, index, value, event):
                _merge(ops.setdefault(key, {}), op, name, item)
    return ops, live


def _event_ops(
    agg: CompiledAggregation, index: int, value: Any, event: dict[str, Any]
) -> Iterator[tuple[str, str, Any]]:
    function, numeric = agg.aggregator.function, agg.input_dtype is None or agg.input_dtype.is_numeric()
    floating = agg.input_dtype is not None and agg.input_dtype.is_float()
    if function == "count":
        yield "inc", f"a{index}.n", 1
    elif function == "sum":
        yield ("incf" if floating else "inc"), f"a{index}.s", (value if floating else int(value))
    elif function == "mean":
        yield "incf", f"a{index}.s", float(value)
        yield "inc", f"a{index}.n", 1
    elif function in ("min", "max"):
        yield f"{function}{'n' if numeric else 's'}", f"a{index}.m", value
    elif function == "last":
        order = f"{event['__event_us']:020d}|{event['__ingest_us']:020d}|{event['__id']}"
        yield f"last{'n' if numeric else 's'}", f"a{index}", (order, value)
    elif function == "distinct_count":
        yield "sadd", "", value


def _merge(bucket: dict[tuple[str, str], Any], op: str, name: str, item: Any) -> None:
    current = bucket.get((op, name))
    if current is None:
        bucket[(op, name)] = {item} if op == "sadd" else item
    elif op in ("inc", "incf"):
        bucket[(op, name)] = current + item
    elif op.startswith("min"):
        bucket[(op, name)] = min(current, item)
    elif op.startswith(("max", "last")):
        bucket[(op, name)] = max(current, item)
    else:
        current.add(item)


def _span(plan: ViewPlan, granularity_us: int) -> int:
    """Longest window among the view's aggregations of one granularity."""
    return max(a.window_us for a in plan.aggregations if a.granularity_us == granularity_us)


class IncrementalExecutor:
    """Applies batches of a source's events to the online state of the views that read it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._apply = client.register_script(APPLY_SCRIPT)

    def apply(self, plans: Sequence[ViewPlan], events: pl.DataFrame) -> ApplyResult:
        """Apply ``events`` (the source's columns plus ``__ingest_us`` and ``__ord``, in arrival
        order) to every view in ``plans``; return counts and the rejected events with reasons."""
        result = ApplyResult()
        rejected = []
        for plan in plans:
            frame = reject_reasons(plan, events)
            rejected.append(frame.filter(pl.col("__reason").is_not_null()))
            counted = frame.filter(pl.col("__reason").is_null()).drop("__reason")
            counted = counted.unique(
                ["__id", "__event_us", *plan.join_keys], keep="first", maintain_order=True
            )
            if plan.transform is not None:
                counted = plan.transform(counted)
            applied, duplicates = self._apply_view(plan, counted)
            result.applied[plan.name] = applied
            # An event is one duplicate however many views read it.
            result.duplicates = max(
                result.duplicates, duplicates + (frame.height - rejected[-1].height - counted.height)
            )
        result.rejected = pl.concat(rejected).unique(["__ord"], maintain_order=True) if rejected else None
        return result

    def _apply_view(self, plan: ViewPlan, counted: pl.DataFrame) -> tuple[int, int]:
        """One script per entity, all pipelined; entities whose batch held an already applied
        id are retried one event at a time, which skips exactly the applied ones."""
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in counted.to_dicts():
            groups.setdefault(tuple(row[k] for k in plan.join_keys), []).append(row)
        entities = list(groups.values())
        results = self._run_all(plan, entities)
        applied = sum(len(rows) for rows, ok in zip(entities, results, strict=True) if ok)
        retry = [[row] for rows, ok in zip(entities, results, strict=True) if not ok for row in rows]
        retried = self._run_all(plan, retry) if retry else []
        applied += sum(retried)
        return applied, len(retried) - sum(retried)

    def _run_all(self, plan: ViewPlan, batches: list[list[dict[str, Any]]]) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for rows in batches:
            keys, args = self._script_call(plan, rows)
            self._apply(keys=keys, args=args, client=pipe)
        try:
            return [bool(r) for r in pipe.execute()]
        except redis.RedisError as exc:
            raise StoreError(f"view '{plan.name}': online write failed: {exc}") from exc

    def _script_call(self, plan: ViewPlan, rows: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
        now_us = min(r["__ingest_us"] for r in rows)
        tag = entity_tag(plan.name, [rows[0][k] for k in plan.join_keys])
        ops, live = _ops(plan, rows, now_us)
        keys = [seen_key(tag), latest_key(tag), hwm_key(tag), *sorted(live)]
        index = {key: i + 1 for i, key in enumerate(keys)}
        args: list[Any] = [now_us, max(r["__ingest_us"] for r in rows), len(rows)]
        for row in rows:  # a duplicate is the same id at the same event time (semantics §3)
            args += [f"{row['__id']}@{row['__event_us']}", row["__event_us"] + plan.lateness_us]
        args += [max(r["__event_us"] for r in rows), self._latest_ttl_ms(plan)]
        commands: list[Any] = []
        for key, bucket in ops.items():
            for (op, name), item in bucket.items():
                for value in sorted(item) if op == "sadd" else [item]:
                    encoded = (
                        f"{value[0]}{_SEP}{_format(value[1])}" if op.startswith("last") else _format(value)
                    )
                    commands += [index[key], op, name, encoded]
        args += [len(commands) // 4, *commands]
        expiries = [(index[k], self._tile_ttl_ms(plan, k, now_us)) for k in sorted(live)]
        args += [len(expiries), *[x for pair in expiries for x in pair]]
        return keys, args

    @staticmethod
    def _latest_ttl_ms(plan: ViewPlan) -> int:
        """How long to remember an entity's latest event: twice the TTL (0: forever, no TTL)."""
        return 0 if plan.ttl_us is None else 2 * plan.ttl_us // 1000

    @staticmethod
    def _tile_ttl_ms(plan: ViewPlan, key: str, now_us: int) -> int:
        tile = int(key.rsplit(":", 1)[1])
        granularity = (
            int(key.rsplit(":", 2)[1])
            if ":t:" in key
            else next(a.granularity_us for a in plan.aggregations if f":d:{a.name}:" in key)
        )
        return max(1, (tile + _span(plan, granularity) + granularity - now_us) // 1000 + 1)
