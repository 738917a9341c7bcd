"""Feast as the oracle: where Feast can compute a value, skewless must give the same one.

Plain views: Feast's own point-in-time join over the source. Aggregated views: Feast's
point-in-time join over the table skewless's backfill wrote, read at event times.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import polars as pl
import pytest

from skewless.examples.fraud_data import FraudDataSpec
from skewless.feature_store import FeatureStore
from skewless.metadata import open_database
from skewless.repo.feast_store import feast_store
from skewless.repo.plan import apply_plan, make_plan
from skewless.settings import Settings


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from tests.conftest import REDIS_URL, copy_example_repo

    root = tmp_path_factory.mktemp("feast_oracle")
    copy_example_repo(root, FraudDataSpec(events=100_000, cards=3_000, end=datetime(2026, 11, 1, tzinfo=UTC)))
    settings = Settings.load(
        root, env={"SKEWLESS_DATABASE_URL": f"sqlite:///{root / 'meta.db'}", "REDIS_URL": REDIS_URL}
    )
    store = FeatureStore(settings=settings)
    database = open_database(settings.database_url)
    apply_plan(make_plan(store.repo, database), store.repo, database, feast_store(settings, REDIS_URL))
    return settings


def _feast_historical(settings: Settings, entity_df: pl.DataFrame, refs: list[str]) -> pl.DataFrame:
    store = feast_store(settings, str(settings.redis_url))
    with contextlib.chdir(settings.repo):  # Feast's DuckDB store reads relative paths from the cwd
        frame = store.get_historical_features(entity_df=entity_df.to_pandas(), features=refs).to_df()
    return pl.from_pandas(frame).with_columns(pl.col("event_timestamp").dt.convert_time_zone("UTC"))


def _assert_same(ours: pl.DataFrame, feast: pl.DataFrame, columns: list[str]) -> None:
    joined = ours.with_row_index("__i").join(
        feast.unique(["card_id", "event_timestamp"]), on=["card_id", "event_timestamp"], suffix="_feast"
    )
    assert joined.height == ours.height
    for column in columns:
        ours_, theirs_ = pl.col(column), pl.col(f"{column}_feast")
        same = ours_.eq_missing(theirs_)
        if joined.schema[column].is_float():  # docs/semantics.md §5: floats to a relative 1e-9
            close = (ours_ - theirs_).abs() <= 1e-9 * pl.max_horizontal(ours_.abs(), theirs_.abs(), 1.0)
            same |= close.fill_null(False)  # a null against a value differs
        differs = joined.filter(~same)
        assert differs.is_empty(), differs.select(column, f"{column}_feast").head()


def test_plain_view_equals_feast_for_ten_thousand_rows(applied: Settings) -> None:
    events = pl.read_parquet(applied.repo / "data" / "transactions.parquet")
    entity_df = events.sample(10_000, seed=11, with_replacement=True).select(
        "card_id",
        (pl.col("event_time") + pl.duration(minutes=pl.int_range(pl.len()) % 5000)).alias("event_timestamp"),
    )
    refs = ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"]
    ours = FeatureStore(settings=applied).get_historical_features(entity_df, refs)
    theirs = _feast_historical(applied, entity_df, refs)
    assert ours["credit_limit"].null_count() < ours.height  # the comparison is not vacuous
    _assert_same(ours, theirs, ["credit_limit", "country", "card_type"])


def test_backfilled_windows_read_by_feast_equal_skewless(applied: Settings) -> None:
    store = FeatureStore(settings=applied)
    store.backfill(
        ["card_activity"], start=datetime(2026, 10, 25, tzinfo=UTC), end=datetime(2026, 10, 27, tzinfo=UTC)
    )
    table = pl.read_parquet(
        applied.repo / "data" / "offline" / "card_activity" / "**" / "*.parquet", hive_partitioning=False
    )
    entity_df = table.sample(2_000, seed=5).select("card_id", pl.col("event_time").alias("event_timestamp"))
    refs = [
        f"card_activity:{name}"
        for name in (
            "count_10m",
            "count_24h",
            "amount_usd_sum_24h",
            "merchant_id_distinct_count_24h",
            "amount_usd_last_7d",
        )
    ]
    ours = store.get_historical_features(entity_df, refs)
    theirs = _feast_historical(applied, entity_df, refs)
    _assert_same(ours, theirs, [r.split(":")[1] for r in refs])


def test_backfill_rerun_replaces_its_days(applied: Settings) -> None:
    store = FeatureStore(settings=applied)
    day = dict(start=datetime(2026, 10, 20, tzinfo=UTC), end=datetime(2026, 10, 21, tzinfo=UTC))
    first = store.backfill(["merchant_activity"], **day)[0]
    path = applied.repo / "data" / "offline" / "merchant_activity" / "date=2026-10-20" / "data.parquet"
    before = pl.read_parquet(path)
    second = store.backfill(["merchant_activity"], **day)[0]
    assert first.rows == second.rows == before.height > 0
    assert pl.read_parquet(path).equals(before)
    assert sorted(p.name for p in path.parent.parent.iterdir()) == ["date=2026-10-20"]
