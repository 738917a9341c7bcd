"""SQL text the batch executor runs in DuckDB, built from a compiled plan (docs/semantics.md):
the events that count, each entity's latest row, and the pieces ``window_sql`` (windowed
features) builds on.

Relations, by name:

- ``__events``: counted events (§3) after the transform, with ``__event_us``, ``__ingest_us``,
  ``__ord`` (arrival position), ``__order_id`` (the event id as text, '' if none) and, for each
  column an ordered aggregation reads, its rank in the order of §5 (``order_rank``);
- ``__rows``: entity rows, with ``__row`` (position), the join keys and ``__t`` (µs).

Everything is integer microseconds, so tile boundaries are exact and equal to the online ones.
"""

from __future__ import annotations

import polars as pl

from skewless.transforms.compiled import ViewPlan
from skewless.transforms.dtypes import dtype_name

__all__ = [
    "alive_sql",
    "floor_sql",
    "history_reach_us",
    "keys_equal",
    "latest_sql",
    "order_rank",
    "plain_view_sql",
    "quote",
    "sql_type",
    "valid_events_sql",
]

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


def floor_sql(expr: str, step_us: int) -> str:
    """``expr`` rounded down to a multiple of ``step_us``, correct for negative times too."""
    return f"({expr} - ((({expr}) % {step_us}) + {step_us}) % {step_us})"


def valid_events_sql(plan: ViewPlan, source_sql: str) -> str:
    """Events that may count (§3): keys and event time present, not from the future, not too late.
    Which of them are first copies the executor decides (``batch.first_copies``): in arrival order,
    polars does it in half the time of a window over a million partitions. With an event id, each
    event also carries ``__copy_hash``, a hash of its identity (id, event time, join keys) that
    DuckDB computes in parallel while it reads. ``source_sql`` must expose ``__ord``."""
    src = plan.source
    event = f"epoch_us({quote(src.event_time)})"
    ingest = f"coalesce(epoch_us({quote(src.ingest_time)}), {event})" if src.ingest_time else event
    not_null = " AND ".join(f"{quote(c)} IS NOT NULL" for c in (*plan.join_keys, src.event_time))
    event_id = f"coalesce(CAST({quote(src.event_id)} AS VARCHAR), '')" if src.event_id else "''"
    copy_hash = ""
    if src.event_id:
        copy_hash = f", hash({', '.join(quote(c) for c in (src.event_id, '__event_us', *plan.join_keys))}) AS __copy_hash"
    return f"""
        SELECT * EXCLUDE (__ord), __ord, {event_id} AS __order_id{copy_hash}
        FROM (SELECT *, {event} AS __event_us, {ingest} AS __ingest_us FROM ({source_sql}))
        WHERE {not_null}
          AND __event_us <= __ingest_us
          AND __ingest_us - __event_us <= {plan.lateness_us}"""


def order_rank(column: str) -> str:
    """The column of ``__events`` that ranks events by (event time, ingest time, event id,
    ``column``), the order ``last`` of ``column`` follows (§5)."""
    return f"__rank_{column}"


def keys_equal(left: str, right: str, keys: tuple[str, ...]) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in keys)


def latest_sql(plan: ViewPlan, as_available: bool, payload: str = "") -> str:
    """Per entity row: the event time of the latest counted event available at ``__t`` (and,
    with ``payload``, the struct of that row's columns), by an ASOF join on availability time.

    By event time, the ASOF match itself is the latest event. "As available" orders by ingest
    time instead, so a running maximum of event time (and the running best row) is carried."""
    keys = ", ".join(quote(k) for k in plan.join_keys)
    if not as_available and not payload:
        return f"""
            SELECT r.__row, l.__event_us AS __latest
            FROM __rows r ASOF LEFT JOIN (SELECT {keys}, __event_us FROM __events) l
                ON {keys_equal("r", "l", plan.join_keys)} AND r.__t >= l.__event_us"""
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
        ) l ON {keys_equal("r", "l", plan.join_keys)} AND r.__t >= l.__avail"""


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


def alive_sql(plan: ViewPlan, latest: str) -> str:
    """True where the entity is found and within TTL at ``__t`` (§6), given the SQL expression of
    its latest event time at ``__t``."""
    ttl = f" AND {latest} >= r.__t - {plan.ttl_us}" if plan.ttl_us is not None else ""
    return f"({latest} IS NOT NULL{ttl})"


def plain_view_sql(plan: ViewPlan, *, as_available: bool) -> str:
    """The latest counted row's columns for every entity row (§6, Feast's point-in-time rule)."""
    payload = "struct_pack(" + ", ".join(f"{quote(c)} := {quote(c)}" for c in plan.features) + ")"
    outputs = ",\n".join(
        f"CASE WHEN {alive_sql(plan, 'latest.__latest')} THEN latest.__best.{quote(c)} END AS {quote(c)}"
        for c in plan.features
    )
    return f"""
        WITH latest AS ({latest_sql(plan, as_available, payload)})
        SELECT r.__row, {outputs}
        FROM __rows r LEFT JOIN latest USING (__row)
        ORDER BY r.__row"""
