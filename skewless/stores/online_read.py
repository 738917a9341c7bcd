"""Read windowed features from Redis: merge the tiles in range, with an honest status per value.

Statuses are Feast's: PRESENT, NULL_VALUE (found, but the value is null), NOT_FOUND (the entity
has no counted event), OUTSIDE_MAX_AGE (its latest event is older than the view's TTL).

Reads are built without I/O (a ``ViewRead``: the Redis commands, and how their replies become
rows), so the SDK runs them on a blocking client and the API on an asyncio one, with the same code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
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
    "READ_SCRIPT",
    "OnlineRow",
    "ViewColumns",
    "ViewRead",
    "execute_reads",
    "feature_view_read",
    "parse_value",
    "read_feature_view",
    "run_commands",
    "script_args",
    "split_replies",
]

PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = "PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE"


@dataclass(frozen=True)
class OnlineRow:
    """One entity's features of one view: values, statuses, and its latest event time (µs)."""

    values: dict[str, Any]
    statuses: dict[str, str]
    event_us: int | None


@dataclass(frozen=True)
class ViewColumns:
    """Features of one view for a list of entities, column by column (a read's result shape)."""

    values: dict[str, list[Any]]
    statuses: dict[str, list[str]]
    event_us: list[int | None]

    @classmethod
    def from_rows(cls, features: Sequence[str], rows: Sequence[OnlineRow]) -> ViewColumns:
        return cls(
            {f: [r.values[f] for r in rows] for f in features},
            {f: [r.statuses[f] for r in rows] for f in features},
            [r.event_us for r in rows],
        )


@dataclass(frozen=True)
class ViewRead:
    """The Redis commands that read some entities of one view, and how their replies become columns."""

    view: str
    commands: list[tuple[Any, ...]]
    decode: Callable[[Sequence[Any]], ViewColumns]


#: Run read commands and, when ARGV[1] names a stream, log the request (ARGV[2]) with the raw
#: replies (msgpack) to it, atomically: what was served is exactly what was logged, in one round
#: trip. A logged read's replies end with one more: 1, or why Redis refused the log entry (it is
#: full, or a read-only replica); the read is answered either way, serving mattering more than
#: its log. ARGV[3:] is the commands in runs that differ only in their first argument (one HMGET
#: per entity with the same fields): name, count and values of the shared trailing arguments,
#: then count and values of the first arguments. Replies come as Lua converts them (HGETALL and
#: SUNION as flat arrays, nil as nil), in command order, the same for every caller.
READ_SCRIPT = """
local replies, i, n = {}, 3, 1
while i <= #ARGV do
  local name, n_shared = ARGV[i], tonumber(ARGV[i + 1])
  local shared = {unpack(ARGV, i + 2, i + 1 + n_shared)}
  local k = i + 2 + n_shared
  for j = k + 1, k + tonumber(ARGV[k]) do
    replies[n] = redis.call(name, ARGV[j], unpack(shared))
    n = n + 1
  end
  i = k + tonumber(ARGV[k]) + 1
end
if ARGV[1] ~= '' then
  local logged = redis.pcall('XADD', ARGV[1], '*', 'h', ARGV[2], 'r', cmsgpack.pack(replies))
  replies[n] = type(logged) == 'table' and logged.err or 1
end
return replies
"""


def script_args(commands: Sequence[tuple[Any, ...]], stream: str = "", header: bytes = b"") -> list[Any]:
    """READ_SCRIPT's arguments: log to ``stream`` (none when empty) with ``header``, then
    ``commands`` (each a name, a first argument, then the rest) grouped in runs that share the
    name and the rest, so a hundred entities' HMGETs send their fields once."""
    args: list[Any] = [stream, header]
    for (name, *rest), run in itertools.groupby(commands, key=lambda c: (c[0], *c[2:])):
        firsts = [command[1] for command in run]
        args += [name, len(rest), *rest, len(firsts), *firsts]
    return args


def run_commands(client: redis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run read ``commands`` in one round trip (READ_SCRIPT, not logged); a StoreError if Redis fails."""
    try:
        return list(client.register_script(READ_SCRIPT)(args=script_args(commands)))
    except redis.RedisError as exc:
        raise StoreError(f"online read failed: {exc}") from exc


def execute_reads(client: redis.Redis, reads: Sequence[ViewRead]) -> list[ViewColumns]:
    """Run ``reads`` in one round trip; columns per read, in order."""
    return split_replies(reads, run_commands(client, [c for read in reads for c in read.commands]))


def split_replies(reads: Sequence[ViewRead], replies: Sequence[Any]) -> list[ViewColumns]:
    """Each read's columns from the replies of all their commands, run in order."""
    rows, start = [], 0
    for read in reads:
        rows.append(read.decode(replies[start : start + len(read.commands)]))
        start += len(read.commands)
    return rows


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


_INT64 = range(-(1 << 63), 1 << 63)


def _tiles(granularity_us: int, at_us: int, span_us: int) -> list[int]:
    """Tile starts a read at ``at_us`` may need for a granularity whose longest window is ``span_us``."""
    current = at_us - at_us % granularity_us
    return list(range(current - span_us, current + 1, granularity_us))


def _parts(agg: CompiledAggregation, index: int, tile: dict[bytes, bytes]) -> dict[str, Any]:
    """One aggregation's parts in a tile hash (fields ``a<index>.<part>``), parsed."""
    types = {
        "n": pl.Int64(),
        "s": pl.Float64() if agg.aggregator.function == "mean" else agg.dtype,
        "h": pl.Int64(),  # an integer sum's high part
        "m": agg.dtype,
        "o": pl.String(),
        "v": agg.dtype,  # last keeps its input's type
    }
    fields = {part: tile.get(f"a{index}.{part}".encode()) for part in types}
    return {part: parse_value(raw, types[part]) for part, raw in fields.items() if raw is not None}


def _merge(
    agg: CompiledAggregation, index: int, tiles: list[dict[bytes, bytes]], members: list[bytes] | None
) -> Any:
    """The aggregation over the tiles in range, merged by its own class's rule."""
    if agg.aggregator.function == "distinct_count":
        return agg.aggregator().load({"d": members or ()}).get()
    state = agg.aggregator()
    for tile in tiles:
        state.merge(agg.aggregator().load(_parts(agg, index, tile)))
    value = state.get()
    # An exact integer sum beyond Int64 has no value of the feature's type (semantics §5).
    return None if isinstance(value, int) and value not in _INT64 else value


def feature_view_read(plan: ViewPlan, entities: Sequence[Sequence[Any]], at_us: int) -> ViewRead:
    """The read of ``plan``'s windowed features for each entity key, as of ``at_us``."""
    tiles = {g: _tiles(g, at_us, span) for g, span in plan.spans.items()}
    distinct = [
        (a, [s for s in tiles[a.granularity_us] if s >= at_us - at_us % a.granularity_us - a.window_us])
        for a in plan.aggregations
        if a.aggregator.function == "distinct_count"
    ]
    commands: list[tuple[Any, ...]] = []
    for entity in entities:
        tag = entity_tag(plan.name, entity)
        commands.append(("GET", latest_key(tag)))
        commands.extend(("HGETALL", tile_key(tag, g, s)) for g, starts in tiles.items() for s in starts)
        commands.extend(("SUNION", *[set_key(tag, a.name, s) for s in starts]) for a, starts in distinct)

    def rows(replies: Sequence[Any]) -> list[OnlineRow]:
        it = iter(replies)
        return [_row(plan, tiles, it, at_us) for _ in entities]

    features = [a.name for a in plan.aggregations]
    return ViewRead(plan.name, commands, lambda replies: ViewColumns.from_rows(features, rows(replies)))


def read_feature_view(
    client: redis.Redis, plan: ViewPlan, entities: Sequence[Sequence[Any]], at_us: int
) -> list[OnlineRow]:
    """The windowed features of ``plan`` for each entity key, as of ``at_us``, row by row."""
    columns = execute_reads(client, [feature_view_read(plan, entities, at_us)])[0]
    return [
        OnlineRow(
            {f: v[i] for f, v in columns.values.items()},
            {f: s[i] for f, s in columns.statuses.items()},
            columns.event_us[i],
        )
        for i in range(len(entities))
    ]


def _as_dict(flat: list[bytes]) -> dict[bytes, bytes]:
    """An HGETALL reply (a flat field, value array through a script) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _row(plan: ViewPlan, tiles: dict[int, list[int]], replies: Any, at_us: int) -> OnlineRow:
    latest_raw = next(replies)
    hashes = {
        g: list(zip(starts, [_as_dict(next(replies)) for _ in starts], strict=True))
        for g, starts in tiles.items()
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
