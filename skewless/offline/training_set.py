"""Training sets: point-in-time features written to a file and recorded in the metadata DB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from skewless._errors import ExecutionError
from skewless.metadata import Database
from skewless.metadata.models import TrainingDataset
from skewless.repo.feature_refs import resolve_features
from skewless.repo.loader import Repo

__all__ = ["TrainingSet", "read_entities", "record_training_set", "write_frame"]


@dataclass(frozen=True)
class TrainingSet:
    """A built training set: where it is, how big, and its metadata DB id."""

    id: int
    path: Path
    rows: int
    definition_versions: dict[str, str]


def read_entities(path: Path) -> pl.DataFrame:
    """Entity rows from a parquet or CSV file (CSV timestamps must carry a zone, e.g. ...Z)."""
    if not path.is_file():
        raise ExecutionError(f"entity file {path} does not exist.")
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix == ".csv":
        return pl.read_csv(path, try_parse_dates=True)
    raise ExecutionError(f"entity file {path}: use .parquet or .csv.")


def write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Write parquet or CSV by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    elif path.suffix == ".csv":
        frame.write_csv(path)
    else:
        raise ExecutionError(f"output {path}: use .parquet or .csv.")


def record_training_set(
    database: Database,
    repo: Repo,
    frame: pl.DataFrame,
    features: Sequence[str],
    *,
    name: str,
    path: Path,
    timestamp_column: str,
    as_available: bool,
) -> TrainingSet:
    """Record what was built — features, versions, rows, time range, path — to rebuild it identically."""
    versions = {view: repo.view(view).version for view in resolve_features(repo, features)}
    times = frame[timestamp_column]
    row = TrainingDataset(
        name=name,
        features=list(features),
        definition_versions=versions,
        entity_rows=frame.height,
        start=times.min(),
        end=times.max(),
        as_available=as_available,
        output_path=str(path.resolve()),
    )
    with database.session() as session:
        session.add(row)
        session.flush()
        dataset_id = row.id
    return TrainingSet(id=dataset_id, path=path, rows=frame.height, definition_versions=versions)
