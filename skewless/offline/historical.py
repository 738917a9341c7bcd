"""Point-in-time correct feature values for entity rows: the heart of training sets."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from skewless._errors import ExecutionError
from skewless.offline.entity_rows import entity_rows, normalize_timestamps
from skewless.repo.feature_refs import resolve_features
from skewless.repo.loader import Repo
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import compile_view, restricted

__all__ = ["get_historical_features"]


def get_historical_features(
    repo: Repo,
    executor: BatchExecutor,
    entity_df: pl.DataFrame,
    features: Sequence[str],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    as_available: bool = False,
) -> pl.DataFrame:
    """``entity_df`` (timestamps in UTC) with one column per requested feature, valued at each
    row's timestamp by docs/semantics.md. Rows keep their order and extra columns."""
    grouped = resolve_features(repo, features)
    frame = normalize_timestamps(entity_df, timestamp_column)
    columns: list[pl.Series] = []
    for view_name, names in grouped.items():
        view = repo.view(view_name)
        rows = entity_rows(frame, tuple(view.entities), timestamp_column)
        plan = restricted(compile_view(view), names)  # only what was asked for
        values = executor.compute(plan, rows, as_available=as_available)
        for name in names:
            out = f"{view_name}__{name}" if full_feature_names else name
            columns.append(values[name].alias(out))
    names = [c.name for c in columns]
    clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(frame.columns)))
    if clashes:
        raise ExecutionError(
            f"output columns {', '.join(clashes)} would clash; pass --full-feature-names "
            "(full_feature_names=True in Python: columns become view__feature) or rename the entity columns."
        )
    return frame.with_columns(columns)
