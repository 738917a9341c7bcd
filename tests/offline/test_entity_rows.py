"""Bad entity frames get clear errors; documented behaviours (duplicates, zones, order) hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from skewless import DefinitionError, ExecutionError
from skewless.examples.fraud_data import FraudDataSpec
from skewless.feature_store import FeatureStore
from skewless.settings import Settings
from tests.conftest import copy_example_repo

T = datetime(2026, 11, 10, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    root = tmp_path_factory.mktemp("repo")
    copy_example_repo(root, FraudDataSpec(events=5_000, cards=50, end=datetime(2026, 11, 20, tzinfo=UTC)))
    return FeatureStore(
        settings=Settings.load(root, env={"SKEWLESS_DATABASE_URL": f"sqlite:///{root / 'm.db'}"})
    )


def rows(**columns: object) -> pl.DataFrame:
    base: dict[str, object] = {
        "card_id": ["c000001", "c000002"],
        "event_timestamp": [T, T - timedelta(days=1)],
    }
    return pl.DataFrame({**base, **columns})


CASES = {
    "missing join key": (
        rows().drop("card_id"),
        "entity rows have no join key 'card_id' (entity 'card'); columns are event_timestamp.",
    ),
    "missing timestamp": (
        rows().drop("event_timestamp"),
        "entity rows have no timestamp column 'event_timestamp'; add it, or name yours with "
        "--timestamp-column (timestamp_column= in Python); the rows have: card_id.",
    ),
    "naive timestamps": (
        rows(event_timestamp=[datetime(2026, 1, 1)] * 2),
        "entity rows: 'event_timestamp' has no time zone; skewless does not guess one. Localize it, e.g. df.with_columns(pl.col('event_timestamp').dt.replace_time_zone('UTC')).",
    ),
    "string timestamps": (
        rows(event_timestamp=["2026-01-01", "2026-01-02"]),
        "entity rows: 'event_timestamp' is String, not a timestamp; parse it to a UTC datetime.",
    ),
    "null timestamp": (
        rows(event_timestamp=[T, None]),
        "entity rows: 1 rows have a null 'event_timestamp'; drop or fill them.",
    ),
    "null key": (
        rows(card_id=["c000001", None]),
        "entity rows: 1 rows have a null 'card_id'; drop or fill them.",
    ),
    "key of the wrong type": (
        rows(card_id=[1, 2]),
        "entity rows: join key 'card_id' is Int64 but entity 'card' declares String; cast the column.",
    ),
    "empty frame": (
        rows().clear(),
        "entity rows are empty; pass at least one row of join keys and a timestamp.",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_entity_rows_get_clear_errors(store: FeatureStore, case: str) -> None:
    frame, message = CASES[case]
    with pytest.raises(ExecutionError) as info:
        store.get_historical_features(frame, ["card_activity:count_1h"])
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        (
            ["card_activity:count_2h"],
            "view 'card_activity' has no feature 'count_2h'; its features are count_10m, count_1h, count_24h, amount_usd_sum_1h, amount_usd_sum_24h, amount_usd_mean_7d, amount_usd_max_24h, merchant_id_distinct_count_24h, night_count_7d, amount_usd_last_7d.",
        ),
        (
            ["nope:count_1h"],
            "Unknown view 'nope'; this repo declares: card_activity, card_profile, merchant_activity.",
        ),
        (["count_1h"], "feature reference 'count_1h' is not 'view:feature', e.g. 'card_activity:count_1h'."),
        ([], "features must be a non-empty list of 'view:feature' references."),
    ],
)
def test_bad_feature_references(store: FeatureStore, refs: list[str], message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        store.get_historical_features(rows(), refs)
    assert str(info.value) == message


def test_duplicates_are_kept_order_preserved_zones_converted(store: FeatureStore) -> None:
    paris = timezone(timedelta(hours=1))
    frame = pl.DataFrame(
        {
            "card_id": ["c000002", "c000001", "c000002"],
            "event_timestamp": [T.astimezone(paris), T, T.astimezone(paris)],
            "label": [1, 0, 1],
        }
    )
    out = store.get_historical_features(frame, ["card_activity:count_24h", "card_profile:country"])
    assert out.columns == ["card_id", "event_timestamp", "label", "count_24h", "country"]
    assert out["card_id"].to_list() == ["c000002", "c000001", "c000002"]
    assert out["event_timestamp"].to_list() == [T, T, T]
    assert out.row(0) == out.row(2)


def test_pandas_input_gives_the_same_values(store: FeatureStore) -> None:
    frame = rows()
    expected = store.get_historical_features(frame, ["card_activity:*"])
    assert store.get_historical_features(frame.to_pandas(), ["card_activity:*"]).equals(expected)


def test_each_feature_asked_for_alone_has_the_value_it_has_with_the_whole_view(store: FeatureStore) -> None:
    """Only the requested aggregations are computed; windows shorter than the view's longest
    then join less history, and must not change a value (floats within docs/semantics.md §5)."""
    cards = [f"c{i:06d}" for i in range(0, 50, 3)] + ["c999999"]
    frame = pl.DataFrame({
        "card_id": cards * 4,
        "event_timestamp": [T - timedelta(days=d, minutes=7 * i) for d in range(4) for i in range(len(cards))],
    })  # fmt: skip
    whole = store.get_historical_features(frame, ["card_activity:*"])
    names = [a.name for a in store.plans["card_activity"].aggregations]
    for name in names:
        alone = store.get_historical_features(frame, [f"card_activity:{name}"])
        assert alone.columns == [*frame.columns, name]
        for got, want in zip(alone[name], whole[name], strict=True):
            assert got == pytest.approx(want, rel=1e-9) if isinstance(want, float) else got == want, name
    pair = store.get_historical_features(
        frame, ["card_activity:count_10m", "card_activity:amount_usd_last_7d"]
    )
    assert pair.select("count_10m", "amount_usd_last_7d").equals(
        whole.select("count_10m", "amount_usd_last_7d")
    )


def test_colliding_names_ask_for_full_feature_names(store: FeatureStore) -> None:
    with pytest.raises(
        ExecutionError, match=r"clash; pass --full-feature-names \(full_feature_names=True in Python"
    ):
        store.get_historical_features(rows(count_1h=[1, 2]), ["card_activity:count_1h"])
    out = store.get_historical_features(
        rows(count_1h=[1, 2]), ["card_activity:count_1h"], full_feature_names=True
    )
    assert "card_activity__count_1h" in out.columns


def test_missing_history_says_how_to_fix(example_repo: Path, tmp_path: Path) -> None:
    empty = FeatureStore(
        settings=Settings.load(example_repo, env={"SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"})
    )
    with pytest.raises(
        ExecutionError,
        match=r"no history at .*transactions.parquet for source 'transactions'; write the file",
    ):
        empty.get_historical_features(rows(), ["card_activity:count_1h"])
