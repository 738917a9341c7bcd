"""Training sets: point-in-time features written to a file and recorded in the metadata DB."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from skewless._errors import ExecutionError
from skewless.metadata import Database
from skewless.metadata.models import TrainingDataset
from skewless.repo.feature_refs import resolve_features
from skewless.repo.loader import Repo
from skewless.transforms.dtypes import TIMESTAMP

__all__ = ["TrainingSet", "check_output", "read_entities", "record_training_set", "write_frame"]


@dataclass(frozen=True)
class TrainingSet:
    """A built training set: where it is, how big, and its metadata DB id."""

    id: int
    path: Path
    rows: int
    definition_versions: dict[str, str]


def read_entities(path: Path, join_keys: Mapping[str, pl.DataType], timestamp_column: str) -> pl.DataFrame:
    """Entity rows from a parquet or CSV file. A CSV's ``join_keys`` columns are read as their
    entities declare them (guessed, the id 00123 would become the number 123), and its timestamps
    must be ISO 8601 with a zone: the message says which value is not, since a CSV's user cannot
    cast a column."""
    if not path.is_file():
        raise ExecutionError(f"entity file {path} does not exist.")
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix != ".csv":
        raise ExecutionError(f"entity file {path}: use .parquet or .csv.")
    frame = pl.read_csv(path, try_parse_dates=True, schema_overrides=dict(join_keys))
    times = frame.get_column(timestamp_column, default=None)
    if (
        times is None
        or times.dtype == pl.Null
        or (isinstance(times.dtype, pl.Datetime) and times.dtype.time_zone)
    ):
        return frame
    # Zoned times in forms polars did not read as one column (2026-11-20 10:00Z beside …T…+01:00)
    texts = times.cast(pl.String).to_list()
    parsed = [None if text is None else _zoned_time(text) for text in texts]
    unzoned = next(
        (t for t, moment in zip(texts, parsed, strict=True) if t is not None and moment is None), None
    )
    if unzoned is not None:
        raise ExecutionError(
            f"entity file {path}: '{timestamp_column}' holds {unzoned!r}, not an ISO 8601 time with "
            "a zone; write every time like 2026-11-20T10:00:00Z (skewless does not guess zones)."
        )
    return frame.with_columns(pl.Series(timestamp_column, parsed, dtype=TIMESTAMP))


def _zoned_time(text: str) -> datetime | None:
    """``text`` as an ISO 8601 time with a zone; None when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def check_output(path: Path, name: str) -> None:
    """Refuse, before any work, an output the training set could not be written to or recorded as."""
    if path.suffix not in (".parquet", ".csv"):
        raise ExecutionError(f"output {path}: use .parquet or .csv.")
    if not 0 < len(name) <= 200:  # the metadata DB's column
        raise ExecutionError(
            f"training set name '{name[:20]}…' has {len(name)} characters; give a name of 1-200."
        )


def write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Write parquet or CSV by the file's suffix (``check_output`` allowed it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)


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
