"""A backfill of a range reads only the history the range can see, and writes exactly what a
backfill of everything writes for the same days, with or without a prepared history."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from skewless.examples.fraud_data import FraudDataSpec
from skewless.feature_store import FeatureStore
from skewless.settings import Settings
from tests.conftest import REDIS_URL, copy_example_repo


def _day(root: Path, view: str, day: str) -> pl.DataFrame:
    return pl.read_parquet(root / "data" / "offline" / view / f"date={day}" / "data.parquet")


@pytest.mark.parametrize("prepared", [False, True])
def test_a_range_writes_what_the_full_backfill_writes(tmp_path: Path, prepared: bool) -> None:
    end = datetime(2026, 11, 1, tzinfo=UTC)
    root = copy_example_repo(tmp_path, FraudDataSpec(events=20_000, cards=200, days=10, end=end))
    settings = Settings.load(
        root, env={"SKEWLESS_DATABASE_URL": f"sqlite:///{root / 'meta.db'}", "REDIS_URL": REDIS_URL}
    )
    store = FeatureStore(settings=settings)
    if prepared:  # history old enough to be kept prepared (transforms/prepared.py)
        settled_ns = time.time_ns() - 60_000_000_000
        for history in (root / "data").glob("*.parquet"):
            os.utime(history, ns=(settled_ns, settled_ns))
    else:
        store.batch.prepared_root = None
    views = ["card_activity", "merchant_activity"]  # windows up to 7 days, and up to 1 day
    store.backfill(views)
    full = {view: _day(root, view, "2026-10-29") for view in views}
    # A start in the middle of a day: the backfill still writes that whole day, whose first rows
    # see events a whole window before its midnight.
    store.backfill(
        views, start=datetime(2026, 10, 29, 12, tzinfo=UTC), end=datetime(2026, 10, 30, tzinfo=UTC)
    )
    for view in views:
        assert full[view].height > 0
        assert _day(root, view, "2026-10-29").equals(full[view])
    kept = sorted(p.parent.parent.name for p in (root / ".skewless" / "prepared").glob("*/*/events-*.arrow"))
    assert kept == (views if prepared else [])
    if prepared:  # and the same values read without it
        store.batch.prepared_root = None
        store.backfill(
            views, start=datetime(2026, 10, 29, tzinfo=UTC), end=datetime(2026, 10, 30, tzinfo=UTC)
        )
        for view in views:
            assert _day(root, view, "2026-10-29").equals(full[view])
