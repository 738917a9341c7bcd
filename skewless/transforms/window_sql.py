"""SQL text for windowed features (docs/semantics.md §4-§6), built from a compiled plan: each
entity row joined to the raw events its windows need, and, for windows much longer than the
rest, to tiles pre-aggregated per entity. Relations as in ``batch_sql``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from skewless.transforms.batch_sql import (
    alive_sql,
    floor_sql,
    history_reach_us,
    keys_equal,
    latest_sql,
    order_rank,
    quote,
    sql_type,
)
from skewless.transforms.compiled import CompiledAggregation, ViewPlan
from skewless.transforms.dtypes import is_numeric

__all__ = ["ViewQuery", "feature_view_sql", "join_span_us", "sweep_sql", "tiled_aggregations"]


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


def _floating(agg: CompiledAggregation) -> bool:
    return agg.input_dtype is not None and agg.input_dtype.is_float()


def _tile_parts(agg: CompiledAggregation, where: str) -> dict[str, tuple[str, str]]:
    """``agg``'s tile parts over the events that satisfy ``where`` (none if it has no tiles)."""
    return agg.aggregator().tile_sql(_value_expr(agg), where, _order_expr(agg), _floating(agg)) or {}


def _part(agg: CompiledAggregation, part: str) -> str:
    return quote(f"{agg.name}.{part}")


def _settle_us(plan: ViewPlan, as_available: bool) -> int:
    """How far before a row's time the tiles end: "as available", an event may arrive up to the
    allowed lateness after its event time, so only older tiles hold nothing that had not arrived
    yet; the events after them come from the raw join, which checks arrival (§7)."""
    return plan.lateness_us if as_available else 0


def tiled_aggregations(
    plan: ViewPlan, *, as_available: bool, ratio: float | None
) -> tuple[CompiledAggregation, ...]:
    """The aggregations to compute from tiles rather than raw events: those of the longest reach
    first, while they reach more than ``ratio`` times further back than the raw events the
    shorter ones (and the recent events of the tiled ones) need. None with ``ratio=None``."""
    if ratio is None:
        return ()
    settle = _settle_us(plan, as_available)
    tiled: list[CompiledAggregation] = []
    for span in sorted({a.reach_us for a in plan.aggregations}, reverse=True):
        group = [a for a in plan.aggregations if a.reach_us == span]
        shorter = [a.reach_us for a in plan.aggregations if a.reach_us < span]
        need = max(shorter + [a.granularity_us + settle for a in (*tiled, *group)])
        if not all(_tile_parts(a, "TRUE") for a in group) or span <= ratio * need:
            break
        tiled += group
    return tuple(tiled)


def _windows_sql(
    plan: ViewPlan, as_available: bool, tiled: tuple[CompiledAggregation, ...], history_us: int | None
) -> str:
    """Each entity row joined to the raw events its windows may need, then every raw feature
    aggregated with a filter to its own window, and every tiled one over the events after its
    complete tiles, ``[floor(t - settle, g), t]`` within its window (as the parts of ``tile_sql``)."""
    raw = [a for a in plan.aggregations if a not in tiled]
    settle = _settle_us(plan, as_available)
    bounds = sorted({(a.window_us, a.granularity_us) for a in raw})
    recent = sorted({(a.window_us, a.granularity_us) for a in tiled})
    lower = {b: f"__lo_{i}" for i, b in enumerate(bounds)}
    after = {b: f"__after_{i}" for i, b in enumerate(recent)}
    lows = [f"{floor_sql('__t', g)} - {w} AS {lower[(w, g)]}" for w, g in bounds] + [
        f"greatest({floor_sql(f'(__t - {settle})', g)}, {floor_sql('__t', g)} - {w}) AS {after[(w, g)]}"
        for w, g in recent
    ]
    names = [*lower.values(), *after.values()]
    least = f"least({', '.join(names)})" if len(names) > 1 else names[0]
    available = " AND e.__ingest_us <= r.__t" if as_available else ""
    aggregates = [
        f"{a.aggregator().sql(_value_expr(a), f'e.__event_us >= r.{lower[(a.window_us, a.granularity_us)]}', _order_expr(a), _floating(a))} AS {quote(a.name)}"
        for a in raw
    ]
    for agg in tiled:
        parts = _tile_parts(agg, f"e.__event_us >= r.{after[(agg.window_us, agg.granularity_us)]}")
        aggregates += [f"{sql} AS {_part(agg, name)}" for name, (_, sql) in parts.items()]
    bucket = _bucket_us(_raw_span_us(raw, tiled, settle), history_us)
    rows = f"SELECT __row, {', '.join(quote(k) for k in plan.join_keys)}, __t, {', '.join(lows)} FROM __rows"
    return f"""
        SELECT r.__row, max(e.__event_us) AS __latest, {", ".join(aggregates)}
        FROM ({_bucketed_rows(rows, least, "__t", bucket)}) r
        JOIN ({_bucketed("__events", "__event_us", bucket)}) e
            ON {keys_equal("e", "r", plan.join_keys)} AND e.__bucket = r.__bucket
            AND e.__event_us >= {least} AND e.__event_us <= r.__t{available}
        GROUP BY r.__row"""


def _raw_span_us(
    raw: list[CompiledAggregation], tiled: tuple[CompiledAggregation, ...], settle_us: int
) -> int:
    """How far back from a row's time the raw join reaches: the longest raw window plus its
    tile, or a tiled one's recent events (its tile plus the settling time)."""
    return max([a.reach_us for a in raw] + [a.granularity_us + settle_us for a in tiled])


def join_span_us(plan: ViewPlan, *, as_available: bool, tile_ratio: float | None) -> int:
    """How far back from a row's time ``feature_view_sql``'s join of raw events reaches."""
    tiled = tiled_aggregations(plan, as_available=as_available, ratio=tile_ratio)
    raw = [a for a in plan.aggregations if a not in tiled]
    return _raw_span_us(raw, tiled, _settle_us(plan, as_available))


def _bucket_us(span_us: int, history_us: int | None) -> int | None:
    """The time buckets a join whose rows reach ``span_us`` back also matches on (see
    ``_bucketed_rows``): half that span, unless the events cover at most four spans of time
    (``history_us``; None: unknown, so buckets). Then buckets only repeat the rows: a backfill's
    day sees about one span of history, and with buckets the example's backfill took 7.0-8.0 s
    instead of 6.4-7.2 s."""
    if history_us is not None and history_us <= 4 * span_us:
        return None
    return max(1, span_us // 2)


def _bucketed_rows(rows: str, low: str, high: str, bucket_us: int | None) -> str:
    """The rows of query ``rows``, each repeated with ``__bucket`` for every time bucket of
    ``bucket_us`` that its span ``[low, high]`` touches (all in bucket 0 without buckets).

    Joined on the entity alone, a row meets its entity's whole history before the time range is
    checked: on the benchmark's 100,000 rows over 30 days, 31.8M row-event pairs to keep 1.15M,
    and more the longer the history. Joined on the entity and the bucket (``_bucketed``), with
    buckets half the longest span, a row meets about 1.5 spans of history, and is repeated for
    the 2-3 buckets its span touches."""
    if bucket_us is None:
        return f"SELECT *, 0 AS __bucket FROM ({rows})"
    buckets = f"range({floor_sql(low, bucket_us)}, {floor_sql(high, bucket_us)} + 1, {bucket_us})"
    return f"SELECT *, unnest({buckets}) AS __bucket FROM ({rows})"


def _bucketed(relation: str, time: str, bucket_us: int | None) -> str:
    """``relation`` with ``__bucket``, the bucket of ``bucket_us`` its column ``time`` falls in
    (0 without buckets)."""
    bucket = "0" if bucket_us is None else floor_sql(time, bucket_us)
    return f"SELECT *, {bucket} AS __bucket FROM {relation}"


def _tiles_sql(plan: ViewPlan, granularity_us: int, aggs: list[CompiledAggregation]) -> str:
    """The tiles of ``granularity_us`` per entity: the parts of each of ``aggs``, and the tile's
    latest event time."""
    parts = [
        f"{sql} AS {_part(agg, name)}" for agg in aggs for name, (_, sql) in _tile_parts(agg, "TRUE").items()
    ]
    return f"""
        SELECT {", ".join(f"e.{quote(k)}" for k in plan.join_keys)}, {floor_sql("e.__event_us", granularity_us)} AS __tile,
               max(e.__event_us) AS __latest, {", ".join(parts)}
        FROM __events e GROUP BY ALL"""


def _merge_sql(agg: CompiledAggregation, name: str, merge: str, where: str) -> str:
    """Part ``name`` of ``agg`` merged over the joined tiles ``t`` that satisfy ``where``."""
    if merge.startswith("at_max:"):
        by = f"t.{_part(agg, merge.removeprefix('at_max:'))}"
        return f"arg_max(t.{_part(agg, name)}, {by}) FILTER (WHERE {where} AND {by} IS NOT NULL)"
    return f"{merge}(t.{_part(agg, name)}) FILTER (WHERE {where})"


def _tile_windows_sql(
    plan: ViewPlan,
    granularity_us: int,
    aggs: list[CompiledAggregation],
    tiles: str,
    settle_us: int,
    history_us: int | None,
) -> str:
    """Each entity row joined to the complete tiles ``[floor(t, g) - w, floor(t - settle, g))``
    of its longest window among ``aggs``; each part merged over its own window's tiles."""
    windows = sorted({a.window_us for a in aggs})
    lower = {w: f"__lo_{i}" for i, w in enumerate(windows)}
    start = floor_sql("__t", granularity_us)
    end = floor_sql(f"(__t - {settle_us})", granularity_us)
    merged = [
        f"{_merge_sql(agg, name, merge, f't.__tile >= r.{lower[agg.window_us]}')} AS {_part(agg, name)}"
        for agg in aggs
        for name, (merge, _) in _tile_parts(agg, "TRUE").items()
    ]
    rows = (
        f"SELECT __row, {', '.join(quote(k) for k in plan.join_keys)}, {end} AS __end, "
        f"{', '.join(f'{start} - {w} AS {lower[w]}' for w in windows)} FROM __rows"
    )
    bucket = _bucket_us(windows[-1] + granularity_us, history_us)
    return f"""
        SELECT r.__row, max(t.__latest) AS __latest, {", ".join(merged)}
        FROM ({_bucketed_rows(rows, lower[windows[-1]], "__end", bucket)}) r
        JOIN ({_bucketed(tiles, "__tile", bucket)}) t
            ON {keys_equal("t", "r", plan.join_keys)} AND t.__bucket = r.__bucket
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


@dataclass(frozen=True)
class ViewQuery:
    """A view's SQL per chunk of ``__rows``: ``select`` after ``ctes``, reading ``relations``
    (name, query), which depend on ``__events`` alone."""

    relations: tuple[tuple[str, str], ...]
    ctes: tuple[str, ...]
    select: str

    def sql(self, *, with_relations: bool) -> str:
        """The query; ``with_relations``: with the relations as CTEs of its own, else reading
        tables of those names built beforehand (``BatchExecutor.compute`` builds them once when
        the rows come in several chunks, and inlines them for one: a table costs its copy)."""
        inlined = [f"{name} AS ({sql})" for name, sql in self.relations] if with_relations else []
        ctes = [*inlined, *self.ctes]
        return f"WITH {', '.join(ctes)} {self.select}" if ctes else self.select


def feature_view_sql(
    plan: ViewPlan, *, as_available: bool, tile_ratio: float | None = None, history_us: int | None = None
) -> ViewQuery:
    """Every windowed feature of ``plan`` for every entity row (§4-§6).

    Aggregations with windows much longer than the others' come from tiles — complete ones
    pre-aggregated per entity, the most recent events (the current tile, and "as available" the
    allowed lateness before it) from the raw join (``tiled_aggregations``) — so the join to raw
    events stays short. The tiles depend on the events alone: relations a caller with many
    chunks of rows builds once. With a TTL no longer than the longest window, an event
    recent enough to keep the entity alive lies inside these joins, so the latest event time
    found there decides it and the ASOF join over all history is not needed. ``history_us``: the
    stretch of event time the events cover (None: unknown), for ``_bucket_us``."""
    tiled = tiled_aggregations(plan, as_available=as_available, ratio=tile_ratio)
    settle = _settle_us(plan, as_available)
    groups = {
        g: [a for a in tiled if a.granularity_us == g] for g in sorted({a.granularity_us for a in tiled})
    }
    ctes = [f"w AS ({_windows_sql(plan, as_available, tiled, history_us)})"]
    per_row = ["w"]  # the relations with a row per entity row, joined to __rows
    relation = {}
    tiles = []
    for i, (g, aggs) in enumerate(groups.items()):
        tiles.append((f"__tiles_{i}", _tiles_sql(plan, g, aggs)))
        tile_windows = _tile_windows_sql(plan, g, aggs, f"__tiles_{i}", settle, history_us)
        ctes.append(f"wt_{i} AS ({tile_windows})")
        per_row.append(f"wt_{i}")
        relation.update({a.name: f"wt_{i}" for a in aggs})
    if history_reach_us(plan) is not None:
        latest = f"greatest({', '.join(f'{r}.__latest' for r in per_row)})"
    else:
        ctes.append(f"latest AS ({latest_sql(plan, as_available)})")
        per_row.append("latest")
        latest = "latest.__latest"
    joins = " ".join(f"LEFT JOIN {r} USING (__row)" for r in per_row)
    outputs = _outputs_sql(plan, latest, lambda a: _result(a, relation.get(a.name)))
    return ViewQuery(
        tuple(tiles),
        tuple(ctes),
        f"""
        SELECT r.__row, {outputs}
        FROM __rows r {joins}
        ORDER BY r.__row""",
    )


def sweep_sql(plan: ViewPlan) -> str:
    """Every windowed feature of ``plan`` for every entity row (§4-§6), as window functions over
    the events and the entity rows in one time order per entity: each entity row's frame is its
    window, ``[floor(t, g) - w, t]`` (the rows at ``t`` are its peers, so events at ``t`` count),
    and its latest event time is the greatest before it. The cost grows with events plus rows,
    where the join's (``feature_view_sql``) grows with the row-event pairs inside the windows.
    Not "as available": there a row's window also depends on when each event arrived."""
    keys = ", ".join(quote(k) for k in plan.join_keys)
    bounds = sorted({(a.window_us, a.granularity_us) for a in plan.aggregations})
    frame = {b: f"__w{i}" for i, b in enumerate(bounds)}
    order = f"PARTITION BY {keys} ORDER BY __ts"
    windows = [
        f"{frame[(w, g)]} AS ({order} RANGE BETWEEN (__ts - ({floor_sql('__ts', g)} - {w})) PRECEDING AND CURRENT ROW)"
        for w, g in bounds
    ] + [f"__history AS ({order} RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"]
    values = [
        f"{a.aggregator().window_sql(_value_expr(a), frame[(a.window_us, a.granularity_us)], _order_expr(a), _floating(a))} AS {quote(a.name)}"
        for a in plan.aggregations
    ]
    inputs = [a.column for a in plan.aggregations if a.column is not None]
    ranks = [order_rank(a.column) for a in plan.aggregations if a.aggregator.ordered and a.column]
    events = ", ".join(quote(c) for c in dict.fromkeys([*plan.join_keys, "__event_us", *inputs, *ranks]))
    outputs = _outputs_sql(plan, "r.__latest", lambda a: f"r.{quote(a.name)}")
    return f"""
        SELECT r.__row, {outputs}
        FROM (
            SELECT e.__row, e.__ts AS __t, max(e.__event_us) OVER __history AS __latest, {", ".join(values)}
            FROM (
                SELECT {events}, __event_us AS __ts, NULL::BIGINT AS __row FROM __events
                UNION ALL BY NAME
                SELECT {keys}, __t AS __ts, __row FROM __rows
            ) e
            WINDOW {", ".join(windows)}
        ) r
        WHERE r.__row IS NOT NULL
        ORDER BY r.__row"""


def _outputs_sql(plan: ViewPlan, latest: str, value: Callable[[CompiledAggregation], str]) -> str:
    """Every feature's output column: ``value(agg)`` where the entity is found and within TTL
    by its ``latest`` event time (§6), the function's value over no events where it has none,
    cast to the feature's type. An integer sum is exact (DuckDB adds BIGINTs as HUGEINT): one
    beyond BIGINT is null (§5), where a plain CAST would fail the whole query."""
    return ",\n".join(
        f"{'TRY_CAST' if _integer_sum(a) else 'CAST'}(CASE WHEN {alive_sql(plan, latest)} "
        f"THEN coalesce({value(a)}, {_empty(a)}) END AS {sql_type(a.dtype)}) AS {quote(a.name)}"
        for a in plan.aggregations
    )


def _integer_sum(agg: CompiledAggregation) -> bool:
    return agg.aggregator.function == "sum" and not _floating(agg)


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
