"""Which live events count (docs/semantics.md §3), with the reason for each that does not.

The batch executor states the same rules in SQL (batch_sql.counted_events_sql); the parity tests
hold the two to each other.
"""

from __future__ import annotations

import polars as pl

from skewless.transforms.compiled import ViewPlan

__all__ = ["reject_reasons"]


def reject_reasons(plan: ViewPlan, events: pl.DataFrame) -> pl.DataFrame:
    """``events`` with ``__event_us``, ``__id`` and ``__reason`` (null when the event counts).

    ``events`` carries the source's columns, ``__ingest_us`` and ``__ord`` (arrival position),
    and ``__id`` when the source declares no ``event_id`` (e.g. the stream entry id).
    """
    source = plan.source
    event_us = pl.col(source.event_time).dt.epoch("us")
    if source.event_id is not None:
        identity = pl.col(source.event_id).cast(pl.String).fill_null(pl.col("__ord").cast(pl.String))
    elif "__id" in events.columns:
        identity = pl.col("__id").cast(pl.String)
    else:
        identity = pl.lit("#") + pl.col("__ord").cast(pl.String)
    delay = pl.col("__ingest_us") - pl.col("__event_us")
    reason = pl.when(pl.col(source.event_time).is_null()).then(
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
    return events.with_columns(__event_us=event_us, __id=identity).with_columns(
        __reason=reason.otherwise(None)
    )
