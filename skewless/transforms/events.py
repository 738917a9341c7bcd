"""Which live events count (docs/semantics.md §3), with the reason for each that does not.

The batch executor states the same rules in SQL and polars (batch_sql.valid_events_sql,
batch.first_copies); the parity tests hold the two to each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from skewless.transforms.compiled import ViewPlan

__all__ = ["event_identity", "reject_reasons"]


def event_identity(plan: ViewPlan, columns: Sequence[str]) -> pl.Expr:
    """What makes an event itself (§3): its id; without one, the stream entry it came from
    (``__entry``, when ``columns`` have it), else its arrival position."""
    own = pl.lit("#") + pl.col("__ord").cast(pl.String)
    if "__entry" in columns:
        own = pl.col("__entry").fill_null(own)
    if plan.source.event_id is None:
        return own
    return pl.col(plan.source.event_id).cast(pl.String).fill_null(own)


def reject_reasons(plan: ViewPlan, events: pl.DataFrame) -> pl.DataFrame:
    """``events`` with ``__event_us``, ``__id`` (what deduplicates the event), ``__order_id`` (its
    id as ``last`` orders it, §5) and ``__reason`` (null when the event counts).

    ``events`` carries the source's columns, ``__ingest_us`` and ``__ord`` (arrival position),
    and ``__entry``, the stream entry it was ingested from (null for events that were not). An
    event without an id of its own is nobody's copy (§3): it is identified by its stream entry —
    which a redelivery, and a replay of the history it landed in, keep — or else by its position.
    """
    source = plan.source
    event_us = pl.col(source.event_time).dt.epoch("us")
    identity = event_identity(plan, events.columns)
    order_id = (
        pl.lit("") if source.event_id is None else pl.col(source.event_id).cast(pl.String).fill_null("")
    )
    delay = pl.col("__ingest_us") - pl.col("__event_us")
    reason: Any = pl.when(pl.col(source.event_time).is_null()).then(  # Then, then ChainedThen
        pl.lit(f"missing event time '{source.event_time}'")
    )
    for key in plan.join_keys:
        reason = reason.when(pl.col(key).is_null()).then(pl.lit(f"missing join key '{key}'"))
    reason = (
        reason.when(delay < 0)
        .then(pl.lit("event time is after its arrival; fix the producer's clock"))
        .when(delay > plan.lateness_us)
        .then(
            pl.format(
                "too late: arrived {} s after its event time; allowed lateness is {} s",
                (delay / 1_000_000).round(3),
                pl.lit(plan.lateness_us // 1_000_000),
            )
        )
    )
    return events.with_columns(__event_us=event_us, __id=identity, __order_id=order_id).with_columns(
        __reason=reason.otherwise(None)
    )
