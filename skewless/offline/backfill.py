"""Backfill: write a view's feature values to the offline store, one partition per UTC day.

The offline table of a FeatureView holds, for every counted event, the entity's feature values
at that event's time (the event included), as ``data/offline/<view>/date=YYYY-MM-DD/data.parquet``
with the join keys, ``event_time``, the features and ``definition_version``. Feast reads the same
directory as the view's batch source. A run over a range replaces the days it covers, so
re-running it is idempotent. Plain views need no backfill: their source is their table.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from skewless.repo.feast_export import offline_table_path
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.batch_sql import history_reach_us
from skewless.transforms.compiled import ViewPlan

__all__ = ["BackfillResult", "backfill_view", "day_range"]

DAY = timedelta(days=1)


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill wrote."""

    view: str
    days: int
    rows: int
    start: datetime
    end: datetime


def day_range(start: datetime, end: datetime) -> list[datetime]:
    """UTC midnights covering [start, end): start rounded down, end rounded up to a day."""
    first = _midnight(start)
    days = []
    while first < end:
        days.append(first)
        first += DAY
    return days


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _between(events: pl.DataFrame, times: pl.Series, low_us: int, high_us: int) -> pl.DataFrame:
    """The events (sorted by ``times``, their event times) in [low_us, high_us): a slice, no copy."""
    low, high = times.search_sorted(pl.Series([low_us, high_us]), side="left")
    return events.slice(low, high - low)


def backfill_view(
    executor: BatchExecutor,
    plan: ViewPlan,
    repo_root: Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    on_day: Callable[[datetime, int, int], None] = lambda day, rows, days: None,
) -> BackfillResult:
    """Compute and write the view's offline table for the days in [start, end) (default: all)."""
    reach = history_reach_us(plan)
    # The first day's rows start at its midnight; they see events up to ``reach`` before it.
    since = _us(_midnight(start)) - reach if start is not None and reach is not None else None
    # In event-time order, so that a day's rows, and the events they can see, are slices.
    events = executor.history(plan, since_us=since, until_us=_us(end) if end else None).sort("__event_us")
    if events.is_empty():
        return BackfillResult(plan.name, 0, 0, start or datetime.now(UTC), end or datetime.now(UTC))
    times = events["__event_us"]
    first = datetime.fromtimestamp(int(times[0]) / 1e6, UTC)
    last = datetime.fromtimestamp(int(times[-1]) / 1e6, UTC)
    days = day_range(start or first, end or last + timedelta(microseconds=1))
    table = repo_root / offline_table_path(plan.name)
    total = 0
    for day in days:
        rows = (
            _between(events, times, _us(day), _us(day + DAY))
            .select(*plan.join_keys, pl.col("__event_us").alias("__t"))
            .unique(maintain_order=True)
            .with_row_index("__row")
            .with_columns(pl.col("__row").cast(pl.Int64))
        )
        partition = table / f"date={day:%Y-%m-%d}"
        shutil.rmtree(partition, ignore_errors=True)
        if rows.height:
            # Only the events the day's rows can see: each day's query then reads days of
            # history, not all of it.
            seen = events if reach is None else _between(events, times, _us(day) - reach, _us(day + DAY))
            values = executor.compute(plan, rows, events=seen)
            partition.mkdir(parents=True)
            rows.join(values, on="__row").select(
                *plan.join_keys,
                pl.col("__t").cast(pl.Datetime("us", "UTC")).alias("event_time"),
                *plan.features,
                pl.lit(plan.version).alias("definition_version"),
            ).write_parquet(partition / "data.parquet")
        total += rows.height
        on_day(day, rows.height, len(days))
    return BackfillResult(plan.name, len(days), total, days[0], days[-1] + DAY)
