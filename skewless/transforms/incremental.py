"""The incremental executor: applies micro-batches of new events to online state in Redis.

It runs the same compiled plan as the batch executor: the events that count (semantics §3), the
same row-level transform, then per (view, entity) one atomic Lua script that checks and records
the event ids and updates the entity's tiles (stores/redis_layout.py). A crash can therefore
neither lose nor double-count an event: a redelivered batch either finds its ids recorded (and
changes nothing) or was never applied.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from skewless.transforms.compiled import ViewPlan
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


@dataclass(frozen=True)
class _Spec:
    """One aggregation's online update, resolved once per plan (kept off the per-event path)."""

    index: int
    name: str
    column: str | None
    granularity_us: int
    horizon_us: int  # a tile is readable until tile start + horizon (longest window + a tile)
    op: str  # the Lua op for the value
    field: str
    distinct: bool
    counts_events: bool  # count: adds 1 per event rather than the value
    count_field: str | None  # mean: also counts its values here


def _specs(plan: ViewPlan) -> list[_Spec]:
    specs = []
    for index, agg in enumerate(plan.aggregations):
        function = agg.aggregator.function
        numeric = agg.input_dtype is None or agg.input_dtype.is_numeric()
        floating = agg.input_dtype is not None and agg.input_dtype.is_float()
        op, part = {
            "count": ("inc", "n"),
            "sum": ("incf" if floating else "inc", "s"),
            "mean": ("incf", "s"),
            "min": ("minn" if numeric else "mins", "m"),
            "max": ("maxn" if numeric else "maxs", "m"),
            "last": ("lastn" if numeric else "lasts", ""),
            "distinct_count": ("sadd", ""),
        }[function]
        horizon = plan.spans[agg.granularity_us] + agg.granularity_us
        field_name = f"a{index}.{part}" if part else (f"a{index}" if function == "last" else "")
        specs.append(
            _Spec(
                index, agg.name, agg.column, agg.granularity_us, horizon, op, field_name,
                distinct=function == "distinct_count",
                counts_events=function == "count",
                count_field=f"a{index}.n" if function == "mean" else None,
            )
        )  # fmt: skip
    return specs


def _ops(
    plan: ViewPlan, specs: list[_Spec], events: list[dict[str, Any]], now_us: int
) -> tuple[dict[str, dict[tuple[str, str], Any]], dict[str, int]]:
    """Tile updates for one entity's events, merged per (key, op, field) — fewer commands, same
    state — and how long each touched key must live (ms)."""
    ops: dict[str, dict[tuple[str, str], Any]] = {}
    ttls: dict[str, int] = {}
    tag = entity_tag(plan.name, [events[0][k] for k in plan.join_keys])
    for spec in specs:
        for event in events:
            event_us = event["__event_us"]
            value = event_us if spec.column is None else event[spec.column]
            if value is None:
                continue
            tile = event_us - event_us % spec.granularity_us
            end = tile + spec.horizon_us
            if end <= now_us:
                continue  # no read at or after now can see this tile
            key = set_key(tag, spec.name, tile) if spec.distinct else tile_key(tag, spec.granularity_us, tile)
            if key not in ttls:
                ttls[key] = (end - now_us) // 1000 + 1
                ops[key] = {}
            bucket = ops[key]
            if spec.op.startswith("last"):
                value = (f"{event_us:020d}|{event['__ingest_us']:020d}|{event['__id']}", value)
            elif spec.op == "inc":
                value = 1 if spec.counts_events else int(value)
            _merge(bucket, spec.op, spec.field, value)
            if spec.count_field is not None:
                _merge(bucket, "inc", spec.count_field, 1)
    return ops, ttls


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


class IncrementalExecutor:
    """Applies batches of a source's events to the online state of the views that read it."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._apply = client.register_script(APPLY_SCRIPT)
        self._specs: dict[tuple[str, str], list[_Spec]] = {}

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
        specs = self._specs.get((plan.name, plan.version))
        if specs is None:
            specs = self._specs[(plan.name, plan.version)] = _specs(plan)
        now_us = min(r["__ingest_us"] for r in rows)
        tag = entity_tag(plan.name, [rows[0][k] for k in plan.join_keys])
        ops, ttls = _ops(plan, specs, rows, now_us)
        live = sorted(ttls)
        keys = [seen_key(tag), latest_key(tag), hwm_key(tag), *live]
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
        args += [len(live), *[x for key in live for x in (index[key], ttls[key])]]
        return keys, args

    @staticmethod
    def _latest_ttl_ms(plan: ViewPlan) -> int:
        """How long to remember an entity's latest event: twice the TTL (0: forever, no TTL)."""
        return 0 if plan.ttl_us is None else 2 * plan.ttl_us // 1000
