"""``FeatureStore``: the Python SDK over a feature repo, with shapes close to Feast's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from skewless.metadata import Database, open_database
from skewless.metadata.models import MaterializationRun, utcnow
from skewless.offline.backfill import BackfillResult, backfill_view
from skewless.offline.entity_rows import as_polars
from skewless.offline.historical import get_historical_features
from skewless.offline.training_set import TrainingSet, record_training_set, write_frame
from skewless.repo.loader import Repo, load_repo
from skewless.settings import Settings
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import compile_view
from skewless.transforms.views import FeatureView

__all__ = ["FeatureStore"]


class FeatureStore:
    """A feature repo, its metadata database and its executors.

    Examples
    --------
    >>> store = FeatureStore("feature_repo")  # doctest: +SKIP
    >>> store.get_historical_features(entity_df, ["card_activity:count_1h"])  # doctest: +SKIP
    """

    def __init__(self, repo: str | Path | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.load(repo)
        self.repo: Repo = load_repo(self.settings.repo)
        self._database: Database | None = None
        self._batch: BatchExecutor | None = None

    @property
    def database(self) -> Database:
        """The metadata database (opened and migrated on first use)."""
        if self._database is None:
            self._database = open_database(self.settings.database_url)
        return self._database

    @property
    def batch(self) -> BatchExecutor:
        """The batch executor for this repo's history."""
        if self._batch is None:
            self._batch = BatchExecutor(self.settings.repo)
        return self._batch

    def get_historical_features(
        self,
        entity_df: Any,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        as_available: bool = False,
    ) -> pl.DataFrame:
        """Point-in-time correct values of ``features`` ("view:feature") for each entity row.

        ``entity_df`` (polars or pandas) holds the join keys and a UTC timestamp column. With
        ``as_available`` only events ingested by each row's time count (docs/semantics.md §7).
        """
        return get_historical_features(
            self.repo,
            self.batch,
            as_polars(entity_df),
            features,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            as_available=as_available,
        )

    def create_training_set(
        self,
        entity_df: Any,
        features: Sequence[str],
        out: str | Path,
        *,
        name: str | None = None,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        as_available: bool = False,
    ) -> TrainingSet:
        """Build a training set, write it to ``out`` (.parquet or .csv) and record it."""
        frame = self.get_historical_features(
            entity_df,
            features,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            as_available=as_available,
        )
        path = Path(out)
        write_frame(frame, path)
        return record_training_set(
            self.database,
            self.repo,
            frame,
            features,
            name=name or path.stem,
            path=path,
            timestamp_column=timestamp_column,
            as_available=as_available,
        )

    def backfill(
        self,
        views: Sequence[str] = (),
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        on_day: Callable[[str, datetime, int, int], None] = lambda view, day, rows, days: None,
    ) -> list[BackfillResult]:
        """Write the offline tables of ``views`` (default: every FeatureView) for [start, end).

        ``on_day(view, day, rows, days)`` is called after each daily partition is written.
        """
        chosen = [self.repo.view(v) for v in views] or list(self.repo.views.values())
        results = []
        for view in chosen:
            if not isinstance(view, FeatureView):
                continue  # plain views are read from their source; nothing to backfill
            plan = compile_view(view)
            with self.database.session() as session:
                run = MaterializationRun(
                    view=view.name,
                    target="offline",
                    mode="full",
                    start=start,
                    end=end,
                    definition_version=plan.version,
                )
                session.add(run)
            try:
                result = backfill_view(
                    self.batch,
                    plan,
                    self.settings.repo,
                    start=start,
                    end=end,
                    on_day=lambda d, n, total, v=view.name: on_day(v, d, n, total),
                )
            except Exception as exc:
                self._finish(run, "failed", 0, str(exc))
                raise
            self._finish(run, "succeeded", result.rows, None)
            results.append(result)
        return results

    def _finish(self, run: MaterializationRun, status: str, rows: int, error: str | None) -> None:
        with self.database.session() as session:
            run = session.merge(run)
            run.status, run.rows_written, run.error, run.finished_at = status, rows, error, utcnow()

    def close(self) -> None:
        """Release database and DuckDB connections."""
        if self._database is not None:
            self._database.close()
        if self._batch is not None:
            self._batch.close()
