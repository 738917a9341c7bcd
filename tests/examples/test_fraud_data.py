"""The example data generator: seeded, and as messy as a real feed where it matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from skewless.examples.fraud_data import FraudDataSpec, generate_card_profiles, generate_transactions

SPEC = FraudDataSpec(events=50_000, days=30, end=datetime(2026, 11, 1, tzinfo=UTC))


def test_same_seed_same_data() -> None:
    assert generate_transactions(SPEC).equals(generate_transactions(SPEC))
    assert generate_card_profiles(SPEC).equals(generate_card_profiles(SPEC))


def test_default_is_a_million_events_over_thirty_days() -> None:
    default = FraudDataSpec()
    assert (default.events, default.days) == (1_000_000, 30)


def test_events_are_late_duplicated_out_of_order_and_sometimes_null() -> None:
    events = generate_transactions(SPEC)
    assert events.schema["event_time"] == pl.Datetime("us", "UTC")
    assert events["event_time"].min() >= SPEC.start and events["event_time"].max() < SPEC.end
    duplicates = events.height - events["event_id"].n_unique()
    assert 0.003 * SPEC.events < duplicates < 0.007 * SPEC.events
    delay = events["ingest_time"] - events["event_time"]
    assert (delay > timedelta(hours=1)).sum() > 0  # later than the example's allowed lateness
    assert not events["event_time"].is_sorted()  # arrival order is not event order
    assert events["ingest_time"].is_sorted()
    assert 0 < events["amount"].null_count() < 0.01 * SPEC.events


def test_profiles_have_several_versions_per_card() -> None:
    profiles = generate_card_profiles(SPEC)
    versions = profiles.group_by("card_id").len()["len"]
    assert versions.min() == 1 and versions.max() == 3
    assert profiles.filter(pl.col("updated_at") < SPEC.start)["card_id"].n_unique() == SPEC.cards
