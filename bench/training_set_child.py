"""One timed training-set build in a fresh process; prints JSON {seconds, peak_mb, rows}.

Usage: python -m bench.training_set_child {skewless|feast} REPO ROWS [--features-only-plain]
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import polars as pl

from bench.common import peak_rss_mb

WINDOWED = ["card_activity:*"]
PLAIN = ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"]


def entity_rows(repo: Path, rows: int) -> pl.DataFrame:
    """Entity rows at random times shortly after real transactions of real cards (seeded)."""
    events = pl.scan_parquet(repo / "data" / "transactions.parquet").select("card_id", "event_time").collect()
    sample = events.sample(rows, seed=42, with_replacement=rows > events.height)
    return sample.select(
        "card_id",
        (pl.col("event_time") + pl.duration(seconds=pl.int_range(pl.len()) % 3600)).alias("event_timestamp"),
    )


def main() -> None:
    engine, repo, rows = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    frame = entity_rows(repo, rows)
    if engine == "skewless":
        from skewless.feature_store import FeatureStore
        from skewless.settings import Settings

        store = FeatureStore(
            settings=Settings.load(repo, env={"SKEWLESS_DATABASE_URL": f"sqlite:///{repo / 'bench.db'}"})
        )
        start = time.perf_counter()
        out = store.get_historical_features(frame, WINDOWED + PLAIN)
        seconds = time.perf_counter() - start
    else:
        from feast import FeatureStore as FeastStore

        store = FeastStore(repo_path=str(repo))
        view = store.get_feature_view("card_activity")
        refs = [f"card_activity:{f.name}" for f in view.features] + PLAIN
        with contextlib.chdir(repo):  # Feast's DuckDB store reads relative paths from the cwd
            start = time.perf_counter()
            out = store.get_historical_features(entity_df=frame.to_pandas(), features=refs).to_df()
            seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "rows": len(out)}))


if __name__ == "__main__":
    main()
