"""Synthetic card transactions and card profiles for the example repo, seeded and vectorized.

The data looks like a real payments feed where it matters for feature stores: a daily rhythm,
popular and quiet cards, a few currencies, null amounts, events that arrive late (some later than
the allowed lateness) and events delivered twice with the same id. Files are written in arrival
(ingest-time) order, so event times are out of order, as a stream would deliver them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["FraudDataSpec", "generate_card_profiles", "generate_transactions", "write_example_data"]

CURRENCIES = ("USD", "EUR", "GBP")
_CURRENCY_WEIGHTS = (0.7, 0.2, 0.1)
_COUNTRIES = ("US", "GB", "DE", "FR", "BR")
_CARD_TYPES = ("debit", "credit", "prepaid")
# Share of traffic per hour of day (UTC): quiet nights, busy afternoons.
_HOURLY = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 7, 7, 7, 7, 7, 7, 7, 6, 6, 5, 4, 3, 3, 2], float)


def _start_of_today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, kw_only=True)
class FraudDataSpec:
    """How much data to generate, over which period, from which seed."""

    events: int = 1_000_000
    days: int = 30
    cards: int = 20_000
    merchants: int = 2_000
    end: datetime = field(default_factory=_start_of_today)
    seed: int = 7
    late_share: float = 0.02
    duplicate_share: float = 0.005
    null_amount_share: float = 0.001

    @property
    def start(self) -> datetime:
        """First instant of the generated period."""
        return self.end - timedelta(days=self.days)


def _event_times(rng: np.random.Generator, spec: FraudDataSpec) -> np.ndarray:
    """Microseconds since the epoch, following the hourly rhythm, uniform within the hour."""
    days = rng.integers(0, spec.days, spec.events)
    hours = rng.choice(24, spec.events, p=_HOURLY / _HOURLY.sum())
    within = rng.integers(0, 3_600_000_000, spec.events)
    start_us = int(spec.start.timestamp() * 1_000_000)
    return start_us + days * 86_400_000_000 + hours * 3_600_000_000 + within


def _arrival_delays(rng: np.random.Generator, spec: FraudDataSpec) -> np.ndarray:
    """Microseconds from event to arrival: mostly ~200 ms, a late share of minutes to 3 hours."""
    delays = rng.exponential(200_000, spec.events).astype(np.int64)
    late = rng.random(spec.events) < spec.late_share
    delays[late] = rng.integers(60_000_000, 3 * 3_600_000_000, int(late.sum()))
    return delays


def generate_transactions(spec: FraudDataSpec) -> pl.DataFrame:
    """Card transactions in arrival order, with late, duplicated and null-amount events."""
    rng = np.random.default_rng(spec.seed)
    event_us = _event_times(rng, spec)
    # Pareto popularity: a few cards transact a lot, most rarely.
    popularity = rng.pareto(1.5, spec.cards) + 1
    card_index = rng.choice(spec.cards, spec.events, p=popularity / popularity.sum())
    amounts = np.round(rng.lognormal(3.2, 1.1, spec.events), 2)
    amounts[rng.random(spec.events) < spec.null_amount_share] = np.nan
    frame = pl.DataFrame(
        {
            "event_id": pl.int_range(0, spec.events, eager=True).cast(pl.String).str.zfill(8),
            "card_id": pl.Series(card_index).cast(pl.String).str.zfill(6),
            "merchant_id": pl.Series(rng.integers(0, spec.merchants, spec.events)).cast(pl.String),
            "amount": pl.Series(amounts).fill_nan(None),
            "currency": rng.choice(CURRENCIES, spec.events, p=_CURRENCY_WEIGHTS),
            "event_time": pl.Series(event_us).cast(pl.Datetime("us", "UTC")),
            "ingest_time": pl.Series(event_us + _arrival_delays(rng, spec)).cast(pl.Datetime("us", "UTC")),
        }
    ).with_columns(
        event_id="t" + pl.col("event_id"),
        card_id="c" + pl.col("card_id"),
        merchant_id="m" + pl.col("merchant_id").str.zfill(5),
    )
    duplicates = frame.sample(fraction=spec.duplicate_share, seed=spec.seed).with_columns(
        ingest_time=pl.col("ingest_time") + pl.duration(seconds=5)
    )
    return pl.concat([frame, duplicates]).sort("ingest_time", "event_id")


def generate_card_profiles(spec: FraudDataSpec) -> pl.DataFrame:
    """One to three profile versions per card: one before the period, updates during it."""
    rng = np.random.default_rng(spec.seed + 1)
    versions = rng.integers(1, 4, spec.cards)
    card_index = np.repeat(np.arange(spec.cards), versions)
    first = np.concatenate([[True], card_index[1:] != card_index[:-1]])
    start_us = int(spec.start.timestamp() * 1_000_000)
    period_us = spec.days * 86_400_000_000
    offsets = np.where(
        first,
        -rng.integers(1, 365 * 86_400_000_000, card_index.size),
        rng.integers(0, period_us, card_index.size),
    )
    return (
        pl.DataFrame(
            {
                "card_id": pl.Series(card_index).cast(pl.String).str.zfill(6),
                "credit_limit": rng.choice([500.0, 1000.0, 2500.0, 5000.0, 10000.0], card_index.size),
                "country": rng.choice(_COUNTRIES, card_index.size),
                "card_type": rng.choice(_CARD_TYPES, card_index.size),
                "updated_at": pl.Series(start_us + offsets).cast(pl.Datetime("us", "UTC")),
            }
        )
        .with_columns(card_id="c" + pl.col("card_id"))
        .sort("updated_at", "card_id")
    )


def write_example_data(data_dir: Path, spec: FraudDataSpec) -> dict[str, int]:
    """Write transactions.parquet and card_profiles.parquet; return the row count of each."""
    data_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, frame in (
        ("transactions", generate_transactions(spec)),
        ("card_profiles", generate_card_profiles(spec)),
    ):
        frame.write_parquet(data_dir / f"{name}.parquet")
        counts[name] = frame.height
    return counts
