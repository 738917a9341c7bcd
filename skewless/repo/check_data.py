"""Plan-time checks of definitions against the data they read.

Definition time catches what needs no data; here each source's history file is checked against
its declared schema, and each transform is run on real rows: it must return the declared columns
and be row-level (each row alone gives the same output as within the batch).
"""

from __future__ import annotations

import polars as pl

from skewless._errors import DefinitionError
from skewless.repo.loader import Repo
from skewless.transforms import EventSource, FeatureView
from skewless.transforms.views import check_transform_output

__all__ = ["check_repo_data"]

_SAMPLE_ROWS = 20


def _history(repo: Repo, source: EventSource) -> pl.LazyFrame | None:
    """The source's history as a lazy frame, or None when there is no file yet."""
    if source.path is None:
        return None  # DuckDB tables are checked by the executors that read them
    path = repo.root / source.path
    if not any(path.parent.glob(path.name)):
        return None
    return pl.scan_parquet(path)


def _check_schema(source: EventSource, history: pl.LazyFrame) -> None:
    actual = history.collect_schema()
    for column, dtype in source.columns.items():
        if column not in actual:
            raise DefinitionError(
                f"source '{source.name}': column '{column}' is declared but missing from "
                f"{source.path}; its columns are {', '.join(actual.names())}."
            )
        if actual[column] != dtype:
            raise DefinitionError(
                f"source '{source.name}': column '{column}' is {actual[column]} in {source.path} "
                f"but declared {dtype}; fix the schema or the data."
            )


def _check_row_level(view: FeatureView, sample: pl.DataFrame) -> None:
    assert view.transform is not None
    batch = check_transform_output(view, sample)
    for index in range(sample.height):
        alone = view.transform(sample.slice(index, 1))
        if not alone.equals(batch.slice(index, 1)):
            raise DefinitionError(
                f"view '{view.name}': transform '{view.transform.__name__}' is not row-level: row "
                f"{index} alone gives a different result than within the batch; compute each row "
                "from its own columns only (use aggregations for anything across rows)."
            )


def check_repo_data(repo: Repo) -> list[str]:
    """Check every source and transform against its data; return notes on what was skipped."""
    notes = []
    samples: dict[str, pl.DataFrame] = {}
    for source in repo.sources.values():
        history = _history(repo, source)
        if history is None:
            notes.append(
                f"source '{source.name}': no data at {source.path or source.table} yet; schema not checked"
            )
            continue
        _check_schema(source, history)
        samples[source.name] = history.select(list(source.columns)).head(_SAMPLE_ROWS).collect()
    for view in repo.views.values():
        if isinstance(view, FeatureView) and view.transform is not None and view.source.name in samples:
            _check_row_level(view, samples[view.source.name])
    return notes
