"""One timed materialization in a fresh process; prints JSON {seconds, rows, peak_mb}.

Usage: python -m bench.online_child {skewless|feast|redis|windowed} REPO REDIS_URL
The first three write the 6-feature plain view `card_profile6` (one row per card) into the same
Redis. `redis` is the floor: the commands skewless sends, encoded before the clock starts, so
only sending them and Redis running them are timed. `windowed` fully materializes the windowed
view `card_activity` (skewless only: Feast has no windowed views) and also reports its keys.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from bench.common import peak_rss_mb


def main() -> None:
    engine, repo, redis_url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    from skewless.settings import Settings

    settings = Settings.load(
        repo, env={"REDIS_URL": redis_url, "SKEWLESS_DATABASE_URL": f"sqlite:///{repo / 'bench.db'}"}
    )
    if engine == "redis":
        seconds, rows = _redis_alone(settings)
    elif engine == "windowed":
        from skewless.feature_store import FeatureStore

        store = FeatureStore(settings=settings)
        start = time.perf_counter()
        rows = store.materialize(["card_activity"])[0].written
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                {"seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb(), "keys": store.redis.dbsize()}
            )
        )
        return
    elif engine == "skewless":
        from skewless.feature_store import FeatureStore

        store = FeatureStore(settings=settings)
        start = time.perf_counter()
        rows = store.materialize(["card_profile6"])[0].written
        seconds = time.perf_counter() - start
    else:
        from skewless.repo.feast_store import feast_store

        feast = feast_store(settings, redis_url)
        with contextlib.chdir(repo):
            start = time.perf_counter()
            feast.materialize(
                start_date=datetime(2000, 1, 1, tzinfo=UTC),
                end_date=datetime.now(UTC) + timedelta(days=1),
                feature_views=["card_profile6"],
            )
            seconds = time.perf_counter() - start
        rows = pl.scan_parquet(repo / "data" / "card_profiles6.parquet").select(pl.len()).collect().item()
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak_rss_mb()}))


def _redis_alone(settings: object) -> tuple[float, int]:
    from skewless.feature_store import FeatureStore
    from skewless.online.plain import encoded_batches, first_load, plain_rows
    from skewless.stores.bulk import run_bulk

    store = FeatureStore(settings=settings)  # type: ignore[arg-type]
    plan = store.plans["card_profile6"]
    rows = plain_rows(plan, store.batch.events(plan, transform=False), compare=False)
    project = store.settings.project
    restore = first_load(store.redis, plan, project, rows)  # as materialize() decides
    batches = list(encoded_batches(plan, project, rows, newer_only=False, restore=restore))
    start = time.perf_counter()
    written = run_bulk(store.redis, batches)
    return time.perf_counter() - start, written


if __name__ == "__main__":
    main()
