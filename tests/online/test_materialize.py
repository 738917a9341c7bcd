"""Materialization on real Redis: Feast's SDK reads the plain views skewless wrote, online values
equal the offline ones at the same time, re-runs do not double count, incremental runs resume."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select

from skewless._errors import ExecutionError
from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.feature_store import FeatureStore
from skewless.metadata import open_database
from skewless.metadata.models import MaterializationRun
from skewless.online.materialize import _latest_rows
from skewless.repo.feast_store import feast_store
from skewless.repo.loader import load_repo
from skewless.repo.plan import apply_plan, make_plan
from skewless.settings import Settings
from skewless.transforms.compiled import compile_view

SKEWLESS = str(Path(sys.executable).with_name("skewless"))
WINDOWED = [
    "card_activity:count_1h",
    "card_activity:count_24h",
    "card_activity:amount_usd_sum_24h",
    "card_activity:amount_usd_mean_7d",
    "card_activity:amount_usd_max_24h",
    "card_activity:merchant_id_distinct_count_24h",
    "card_activity:amount_usd_last_7d",
]


@pytest.fixture
def store(make_store: Callable[..., FeatureStore]) -> FeatureStore:
    return make_store(events=20_000, cards=200, days=3)


def _cards(store: FeatureStore, n: int = 60) -> list[str]:
    return pl.read_parquet(store.settings.repo / "data" / "transactions.parquet")["card_id"].unique(
        maintain_order=True
    ).head(n).to_list() + ["c999999"]


def _assert_online_equals_offline(store: FeatureStore, features: list[str], at: datetime) -> None:
    cards = _cards(store)
    online = store.get_online_features(features, {"card_id": cards}, at=at)
    offline = store.get_historical_features(
        pl.DataFrame({"card_id": cards, "event_timestamp": [at] * len(cards)}), features, as_available=True
    )
    for name, values in zip(online.names, online.values, strict=True):
        for got, want in zip(values, offline[name].to_list(), strict=True):
            assert (got == pytest.approx(want, rel=1e-9)) if isinstance(want, float) else got == want, name


def test_latest_rows_take_each_entitys_latest_row_and_keep_a_table_of_current_values(
    example_repo: Path,
) -> None:
    plan = compile_view(load_repo(example_repo).views["card_profile"])
    events = pl.DataFrame({
        "card_id": ["a", "b", "a", "a", "a"],
        "__event_us": [5, 1, 5, 3, 5],
        "__ingest_us": [6, 1, 7, 9, 7],
        "__ord": [0, 1, 2, 3, 4],
        "credit_limit": [1.0, 2.0, 3.0, 4.0, 5.0],
    })  # fmt: skip
    latest = _latest_rows(plan, events).select("card_id", "credit_limit")
    assert sorted(latest.rows()) == [("a", 5.0), ("b", 2.0)]  # event time, then ingest, then arrival
    current = events.slice(0, 2)
    assert _latest_rows(plan, current).equals(current)


def test_feast_sdk_reads_plain_views_skewless_materialized(store: FeatureStore) -> None:
    database = open_database(store.settings.database_url)
    feast = feast_store(store.settings, str(store.settings.redis_url))
    apply_plan(make_plan(store.repo, database), store.repo, database, feast)
    store.materialize(["card_profile"])
    cards = _cards(store)
    ours = store.get_online_features(
        ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"], {"card_id": cards}
    )
    with contextlib.chdir(store.settings.repo):
        theirs = feast.get_online_features(
            features=["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"],
            entity_rows=[{"card_id": c} for c in cards],
        ).to_dict()
    for name, values in zip(ours.names, ours.values, strict=True):
        assert theirs[name] == values, name
    assert ours.statuses[0][-1] == "NOT_FOUND" and theirs["credit_limit"][-1] is None


def test_skewless_reads_plain_views_feast_materialized(store: FeatureStore) -> None:
    """skewless writes only Feast's fields and reads the event time from ``_ts``: rows Feast
    wrote are served the same as its own, statuses and event times included."""
    features = ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"]
    cards = {"card_id": _cards(store)}
    store.materialize(["card_profile"])
    ours = store.get_online_features(features, cards)
    store.redis.flushdb()
    database = open_database(store.settings.database_url)
    feast = feast_store(store.settings, str(store.settings.redis_url))
    apply_plan(make_plan(store.repo, database), store.repo, database, feast)
    with contextlib.chdir(store.settings.repo):
        feast.materialize(
            start_date=datetime(2000, 1, 1, tzinfo=UTC),
            end_date=datetime.now(UTC),
            feature_views=["card_profile"],
        )
    assert store.get_online_features(features, cards) == ours


def test_materialized_windows_equal_offline_and_rerun_changes_nothing(store: FeatureStore) -> None:
    store.materialize(["card_activity"])
    at = datetime.now(UTC)
    _assert_online_equals_offline(store, WINDOWED, at)
    card = _cards(store)[0]
    counted = store.batch.events(store.plans["card_activity"], transform=False)
    latest = f"skl:{{card_activity|{card}}}:latest"  # kept twice the view's 7-day TTL
    assert int(store.redis.get(latest)) == counted.filter(pl.col("card_id") == card)["__event_us"].max()  # type: ignore[arg-type]
    assert 0 < store.redis.pttl(latest) <= 14 * 86_400_000
    before = store.get_online_features(WINDOWED, {"card_id": _cards(store)}, at=at)
    store.materialize(["card_activity"])  # a full run again (e.g. after an interruption)
    assert store.get_online_features(WINDOWED, {"card_id": _cards(store)}, at=at) == before


def test_incremental_materialize_resumes_from_the_watermark(store: FeatureStore) -> None:
    repo = store.settings.repo
    history = pl.read_parquet(repo / "data" / "transactions.parquet")
    cut = history["ingest_time"].sort()[history.height * 2 // 3]
    history.filter(pl.col("ingest_time") <= cut).write_parquet(repo / "data" / "transactions.parquet")
    first = store.materialize(["card_activity"], incremental=True)[0]
    assert first.watermark_us is not None
    history.write_parquet(repo / "data" / "transactions.parquet")  # new events arrived
    second = store.materialize(["card_activity"], incremental=True)[0]
    assert 0 < second.written < first.written
    store.materialize(["card_activity"], incremental=True)  # nothing new: nothing changes
    _assert_online_equals_offline(store, WINDOWED, datetime.now(UTC))


def test_materialize_cli_shows_what_it_wrote(
    store: FeatureStore, isolated_redis_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": isolated_redis_url,
        "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
    }
    result = subprocess.run(
        [SKEWLESS, "materialize", "card_profile", "--repo", str(store.settings.repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "card_profile: wrote 200 rows to Redis." in result.stdout


def test_each_run_is_recorded_with_its_rows_or_its_error(
    example_repo: Path, isolated_redis_url: str, database_url: str
) -> None:
    _assert_runs_recorded(example_repo, isolated_redis_url, database_url)


def test_an_in_memory_metadata_database_records_runs_too(example_repo: Path, isolated_redis_url: str) -> None:
    """The "running" row is written from a thread: one in-memory database for every thread."""
    _assert_runs_recorded(example_repo, isolated_redis_url, "sqlite://")


def _assert_runs_recorded(example_repo: Path, isolated_redis_url: str, database_url: str) -> None:
    write_example_data(example_repo / "data", FraudDataSpec(events=2_000, cards=20, days=2))
    env = {"REDIS_URL": isolated_redis_url, "SKEWLESS_DATABASE_URL": database_url}
    store = FeatureStore(settings=Settings.load(example_repo, env=env))
    written = store.materialize(["card_profile"])[0].written
    (example_repo / "data" / "transactions.parquet").unlink()
    with pytest.raises(ExecutionError, match="no history"):
        store.materialize(["card_activity"])
    with store.database.session() as session:
        runs = session.scalars(select(MaterializationRun).order_by(MaterializationRun.id)).all()
        recorded = [(r.view, r.status, r.rows_written, r.finished_at is not None) for r in runs]
        error = runs[-1].error
    store.close()
    assert recorded == [("card_profile", "succeeded", written, True), ("card_activity", "failed", 0, True)]
    assert error is not None and "no history" in error
