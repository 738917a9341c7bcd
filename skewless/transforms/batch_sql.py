"""SQL text the batch executor runs in DuckDB, built from a compiled plan (docs/semantics.md).

Relations, by name:

- ``__events``: counted events (§3) after the transform, with ``__event_us``, ``__ingest_us``,
  ``__ord`` (arrival position), ``__order_id`` (the event id as text, '' if none) and, for each
  column an ordered aggregation reads, its rank in the order of §5 (``order_rank``);
- ``__rows``: entity rows, with ``__row`` (position), the join keys and ``__t`` (µs).

Everything is integer microseconds, so tile boundaries are exact and equal to the online ones.
"""

from __future__ import annotations

import polars as pl

from skewless.transforms.compiled import CompiledAggregation, ViewPlan
from skewless.transforms.dtypes import dtype_name, is_numeric

__all__ = ["feature_view_sql", "history_reach_us", "order_rank", "plain_view_sql", "valid_events_sql"]

_SQL_TYPES = {
    "Int32": "INTEGER",
    "Int64": "BIGINT",
    "Float32": "FLOAT",
    "Float64": "DOUBLE",
    "String": "VARCHAR",
    "Boolean": "BOOLEAN",
    "Datetime": "TIMESTAMPTZ",
}


def sql_type(dtype: pl.DataType) -> str:
    """DuckDB type for a supported polars type."""
    return _SQL_TYPES[dtype_name(dtype)]


def quote(name: str) -> str:
    """A quoted SQL identifier (definition names are already checked identifiers)."""
    return '"' + name.replace('"', '""') + '"'


def _floor(expr: str, step_us: int) -> str:
    """``expr`` rounded down to a multiple of ``step_us``, correct for negative times too."""
    return f"({expr} - ((({expr}) % {step_us}) + {step_us}) % {step_us})"


def valid_events_sql(plan: ViewPlan, source_sql: str) -> str:
    """Events that may count (§3): keys and event time present, not from the future, not too late.
    Which of them are first copies the executor decides (``batch.first_copies``): in arrival order,
    polars does it in half the time of a window over a million partitions. ``source_sql`` must
    expose ``__ord``."""
    src = plan.source
    event = f"epoch_us({quote(src.event_time)})"
    ingest = f"coalesce(epoch_us({quote(src.ingest_time)}), {event})" if src.ingest_time else event
    not_null = " AND ".join(f"{quote(c)} IS NOT NULL" for c in (*plan.join_keys, src.event_time))
    event_id = f"coalesce(CAST({quote(src.event_id)} AS VARCHAR), '')" if src.event_id else "''"
    return f"""
        SELECT * EXCLUDE (__ord), __ord, {event_id} AS __order_id
        FROM (SELECT *, {event} AS __event_us, {ingest} AS __ingest_us FROM ({source_sql}))
        WHERE {not_null}
          AND __event_us <= __ingest_us
          AND __ingest_us - __event_us <= {plan.lateness_us}"""


def order_rank(column: str) -> str:
    """The column of ``__events`` that ranks events by (event time, ingest time, event id,
    ``column``), the order ``last`` of ``column`` follows (§5)."""
    return f"__rank_{column}"


def _keys_equal(left: str, right: str, keys: tuple[str, ...]) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in keys)


def _latest_sql(plan: ViewPlan, as_available: bool, payload: str = "") -> str:
    """Per entity row: the event time of the latest counted event available at ``__t`` (and,
    with ``payload``, the struct of that row's columns), by an ASOF join on availability time.

    By event time, the ASOF match itself is the latest event. "As available" orders by ingest
    time instead, so a running maximum of event time (and the running best row) is carried."""
    keys = ", ".join(quote(k) for k in plan.join_keys)
    if not as_available and not payload:
        return f"""
            SELECT r.__row, l.__event_us AS __latest
            FROM __rows r ASOF LEFT JOIN (SELECT {keys}, __event_us FROM __events) l
                ON {_keys_equal("r", "l", plan.join_keys)} AND r.__t >= l.__event_us"""
    avail = "__ingest_us" if as_available else "__event_us"
    frame = f"PARTITION BY {keys} ORDER BY {avail}, __ord ROWS UNBOUNDED PRECEDING"
    best = (
        f", arg_max({payload}, struct_pack(e := __event_us, i := __ingest_us, o := __ord)) OVER ({frame}) AS __best"
        if payload
        else ""
    )
    return f"""
        SELECT r.__row, l.__latest{", l.__best" if payload else ""}
        FROM __rows r ASOF LEFT JOIN (
            SELECT {keys}, {avail} AS __avail, max(__event_us) OVER ({frame}) AS __latest{best}
            FROM __events
            QUALIFY row_number() OVER (PARTITION BY {keys}, {avail} ORDER BY __ord DESC) = 1
        ) l ON {_keys_equal("r", "l", plan.join_keys)} AND r.__t >= l.__avail"""


def history_reach_us(plan: ViewPlan) -> int | None:
    """How long before an entity row's time the events that decide its values can lie (§4, §6):
    the longest window plus its tile, for a feature view whose TTL is no longer than its longest
    window (an event that keeps the entity alive lies inside the windows); else None, all of
    history (a plain view's latest row, or liveness by the latest event however old)."""
    if plan.kind == "plain_view" or plan.ttl_us is None:
        return None
    if plan.ttl_us > max(a.window_us for a in plan.aggregations):
        return None
    return plan.max_window_us


def _alive(plan: ViewPlan, latest: str) -> str:
    """True where the entity is found and within TTL at ``__t`` (§6), given the SQL expression of
    its latest event time at ``__t``."""
    ttl = f" AND {latest} >= r.__t - {plan.ttl_us}" if plan.ttl_us is not None else ""
    return f"({latest} IS NOT NULL{ttl})"


def _value_expr(agg: CompiledAggregation) -> str:
    if agg.column is None:
        return "e.__event_us"
    column = f"e.{quote(agg.column)}"
    needs_number = agg.aggregator.function in ("sum", "mean")
    if (
        needs_number
        and agg.input_dtype is not None
        and is_numeric(agg.input_dtype)
        and not agg.input_dtype.is_numeric()
    ):
        return f"CAST({column} AS BIGINT)"  # booleans count as 0/1
    return column


def _order_expr(agg: CompiledAggregation) -> str:
    return f"e.{quote(order_rank(agg.column))}" if agg.aggregator.ordered and agg.column else "NULL"


def _span(agg: CompiledAggregation) -> int:
    """How far back from ``t`` the raw events of ``agg``'s window may reach (§4)."""
    return agg.window_us + agg.granularity_us


def _floating(agg: CompiledAggregation) -> bool:
    return agg.input_dtype is not None and agg.input_dtype.is_float()


def _tile_parts(agg: CompiledAggregation, where: str) -> dict[str, tuple[str, str]]:
    """``agg``'s tile parts over the events that satisfy ``where`` (none if it has no tiles)."""
    return agg.aggregator().tile_sql(_value_expr(agg), where, _order_expr(agg), _floating(agg)) or {}


def _part(agg: CompiledAggregation, part: str) -> str:
    return quote(f"{agg.name}.{part}")


def tiled_aggregations(
    plan: ViewPlan, *, as_available: bool, ratio: float | None
) -> tuple[CompiledAggregation, ...]:
    """The aggregations to compute from tiles rather than raw events: those of the longest reach
    first, while they reach more than ``ratio`` times further back than the raw events the
    shorter ones (and the current tiles of the tiled ones) need. Tiles cannot know what was
    available at each row's time, so "as available" uses raw events only, as does ``ratio=None``."""
    if as_available or ratio is None:
        return ()
    tiled: list[CompiledAggregation] = []
    for span in sorted({_span(a) for a in plan.aggregations}, reverse=True):
        group = [a for a in plan.aggregations if _span(a) == span]
        shorter = [_span(a) for a in plan.aggregations if _span(a) < span]
        need = max(shorter + [a.granularity_us for a in (*tiled, *group)])
        if not all(_tile_parts(a, "TRUE") for a in group) or span <= ratio * need:
            break
        tiled += group
    return tuple(tiled)


def _windows_sql(plan: ViewPlan, as_available: bool, tiled: tuple[CompiledAggregation, ...]) -> str:
    """Each entity row joined to the raw events its windows may need, then every raw feature
    aggregated with a filter to its own window, and every tiled one over its current, partial
    tile ``[floor(t, g), t]`` (as the parts of ``tile_sql``)."""
    raw = [a for a in plan.aggregations if a not in tiled]
    bounds = sorted({(a.window_us, a.granularity_us) for a in raw} | {(0, a.granularity_us) for a in tiled})
    lower = {b: f"__lo_{i}" for i, b in enumerate(bounds)}
    lows = ", ".join(f"{_floor('__t', g)} - {w} AS {lower[(w, g)]}" for w, g in bounds)
    least = f"least({', '.join(lower.values())})" if len(lower) > 1 else next(iter(lower.values()))
    available = " AND e.__ingest_us <= r.__t" if as_available else ""
    aggregates = [
        f"{a.aggregator().sql(_value_expr(a), f'e.__event_us >= r.{lower[(a.window_us, a.granularity_us)]}', _order_expr(a), _floating(a))} AS {quote(a.name)}"
        for a in raw
    ]
    for agg in tiled:
        parts = _tile_parts(agg, f"e.__event_us >= r.{lower[(0, agg.granularity_us)]}")
        aggregates += [f"{sql} AS {_part(agg, name)}" for name, (_, sql) in parts.items()]
    return f"""
        SELECT r.__row, max(e.__event_us) AS __latest, {", ".join(aggregates)}
        FROM (SELECT __row, {", ".join(quote(k) for k in plan.join_keys)}, __t, {lows} FROM __rows) r
        JOIN __events e ON {_keys_equal("e", "r", plan.join_keys)}
            AND e.__event_us >= {least} AND e.__event_us <= r.__t{available}
        GROUP BY r.__row"""


def _tiles_sql(plan: ViewPlan, granularity_us: int, aggs: list[CompiledAggregation]) -> str:
    """The tiles of ``granularity_us`` per entity: the parts of each of ``aggs``, and the tile's
    latest event time."""
    parts = [
        f"{sql} AS {_part(agg, name)}" for agg in aggs for name, (_, sql) in _tile_parts(agg, "TRUE").items()
    ]
    return f"""
        SELECT {", ".join(f"e.{quote(k)}" for k in plan.join_keys)}, {_floor("e.__event_us", granularity_us)} AS __tile,
               max(e.__event_us) AS __latest, {", ".join(parts)}
        FROM __events e GROUP BY ALL"""


def _merge_sql(agg: CompiledAggregation, name: str, merge: str, where: str) -> str:
    """Part ``name`` of ``agg`` merged over the joined tiles ``t`` that satisfy ``where``."""
    if merge.startswith("at_max:"):
        by = f"t.{_part(agg, merge.removeprefix('at_max:'))}"
        return f"arg_max(t.{_part(agg, name)}, {by}) FILTER (WHERE {where} AND {by} IS NOT NULL)"
    return f"{merge}(t.{_part(agg, name)}) FILTER (WHERE {where})"


def _tile_windows_sql(
    plan: ViewPlan, granularity_us: int, aggs: list[CompiledAggregation], tiles: str
) -> str:
    """Each entity row joined to the complete tiles ``[floor(t, g) - w, floor(t, g))`` of its
    longest window among ``aggs``; each part merged over its own window's tiles."""
    windows = sorted({a.window_us for a in aggs})
    lower = {w: f"__lo_{i}" for i, w in enumerate(windows)}
    end = _floor("__t", granularity_us)
    merged = [
        f"{_merge_sql(agg, name, merge, f't.__tile >= r.{lower[agg.window_us]}')} AS {_part(agg, name)}"
        for agg in aggs
        for name, (merge, _) in _tile_parts(agg, "TRUE").items()
    ]
    return f"""
        SELECT r.__row, max(t.__latest) AS __latest, {", ".join(merged)}
        FROM (SELECT __row, {", ".join(quote(k) for k in plan.join_keys)}, {end} AS __end,
                     {", ".join(f"{end} - {w} AS {lower[w]}" for w in windows)} FROM __rows) r
        JOIN {tiles} t ON {_keys_equal("t", "r", plan.join_keys)}
            AND t.__tile >= r.{lower[windows[-1]]} AND t.__tile < r.__end
        GROUP BY r.__row"""


def _combine_sql(agg: CompiledAggregation, name: str, merge: str, a: str, b: str) -> str:
    """Part ``name`` of ``agg`` from relations ``a`` and ``b`` (disjoint events) combined."""
    left, right = f"{a}.{_part(agg, name)}", f"{b}.{_part(agg, name)}"
    if merge in ("sum", "fsum"):
        return f"coalesce({left} + {right}, {left}, {right})"
    if merge in ("min", "max"):
        return f"{'least' if merge == 'min' else 'greatest'}({left}, {right})"
    by = _part(agg, merge.removeprefix("at_max:"))
    return f"CASE WHEN {b}.{by} IS NULL OR {a}.{by} > {b}.{by} THEN {left} ELSE {right} END"


def feature_view_sql(plan: ViewPlan, *, as_available: bool, tile_ratio: float | None = None) -> str:
    """Every windowed feature of ``plan`` for every entity row (§4-§6).

    Aggregations with windows much longer than the others' come from tiles — complete ones
    pre-aggregated per entity, the current one from raw events (``tiled_aggregations``) — so the
    join to raw events stays short. With a TTL no longer than the longest window, an event
    recent enough to keep the entity alive lies inside these joins, so the latest event time
    found there decides it and the ASOF join over all history is not needed."""
    tiled = tiled_aggregations(plan, as_available=as_available, ratio=tile_ratio)
    groups = {
        g: [a for a in tiled if a.granularity_us == g] for g in sorted({a.granularity_us for a in tiled})
    }
    ctes = [f"w AS ({_windows_sql(plan, as_available, tiled)})"]
    relation = {}
    for i, (g, aggs) in enumerate(groups.items()):
        ctes.append(f"tiles_{i} AS ({_tiles_sql(plan, g, aggs)})")
        ctes.append(f"wt_{i} AS ({_tile_windows_sql(plan, g, aggs, f'tiles_{i}')})")
        relation.update({a.name: f"wt_{i}" for a in aggs})
    if history_reach_us(plan) is not None:
        latest = f"greatest({', '.join(['w.__latest', *(f'wt_{i}.__latest' for i in range(len(groups)))])})"
    else:
        ctes.append(f"latest AS ({_latest_sql(plan, as_available)})")
        latest = "latest.__latest"
    joins = " ".join(
        f"LEFT JOIN {c.split(' AS ', 1)[0]} USING (__row)" for c in ctes if not c.startswith("tiles_")
    )
    outputs = ",\n".join(
        f"CAST(CASE WHEN {_alive(plan, latest)} THEN coalesce({_result(a, relation.get(a.name))}, {_empty(a)}) END "
        f"AS {sql_type(a.dtype)}) AS {quote(a.name)}"
        for a in plan.aggregations
    )
    return f"""
        WITH {", ".join(ctes)}
        SELECT r.__row, {outputs}
        FROM __rows r {joins}
        ORDER BY r.__row"""


def _result(agg: CompiledAggregation, tiles: str | None) -> str:
    """``agg``'s value: from the raw join ``w``, or its parts from ``w`` and ``tiles`` combined."""
    if tiles is None:
        return f"w.{quote(agg.name)}"
    parts = _tile_parts(agg, "TRUE")
    return agg.aggregator().result_sql(
        {name: _combine_sql(agg, name, merge, "w", tiles) for name, (merge, _) in parts.items()}
    )


def _empty(agg: CompiledAggregation) -> str:
    return "NULL" if agg.aggregator.empty is None else str(agg.aggregator.empty)


def plain_view_sql(plan: ViewPlan, *, as_available: bool) -> str:
    """The latest counted row's columns for every entity row (§6, Feast's point-in-time rule)."""
    payload = "struct_pack(" + ", ".join(f"{quote(c)} := {quote(c)}" for c in plan.features) + ")"
    outputs = ",\n".join(
        f"CASE WHEN {_alive(plan, 'latest.__latest')} THEN latest.__best.{quote(c)} END AS {quote(c)}"
        for c in plan.features
    )
    return f"""
        WITH latest AS ({_latest_sql(plan, as_available, payload)})
        SELECT r.__row, {outputs}
        FROM __rows r LEFT JOIN latest USING (__row)
        ORDER BY r.__row"""
