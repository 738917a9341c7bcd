"""Check and normalize the entity frame of a training set (docs/semantics.md §1, §8)."""

from __future__ import annotations

from typing import Any

import polars as pl

from skewless._errors import ExecutionError
from skewless.transforms.dtypes import TIMESTAMP
from skewless.transforms.entity import Entity

__all__ = ["as_polars", "entity_rows", "normalize_timestamps"]


def as_polars(frame: Any) -> pl.DataFrame:
    """A polars frame from a polars or pandas frame (or a pyarrow table)."""
    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        converted = (
            pl.from_pandas(frame) if type(frame).__module__.startswith("pandas") else pl.from_arrow(frame)
        )
    except (TypeError, ValueError) as exc:
        raise ExecutionError(
            f"entity rows must be a polars or pandas DataFrame, not {type(frame).__name__}."
        ) from exc
    if not isinstance(converted, pl.DataFrame):
        raise ExecutionError(f"entity rows must be a polars or pandas DataFrame, not {type(frame).__name__}.")
    return converted


def _refuse_nulls(frame: pl.DataFrame, column: str) -> None:
    nulls = frame[column].null_count()
    if nulls:
        raise ExecutionError(f"entity rows: {nulls} rows have a null '{column}'; drop or fill them.")


def normalize_timestamps(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """``frame`` with ``column`` as UTC microseconds; errors for missing, naive or null times."""
    if frame.is_empty():
        raise ExecutionError("entity rows are empty; pass at least one row of join keys and a timestamp.")
    if column not in frame.columns:
        raise ExecutionError(
            f"entity rows have no timestamp column '{column}'; add it, or name yours with "
            f"--timestamp-column (timestamp_column= in Python); the rows have: {', '.join(frame.columns)}."
        )
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise ExecutionError(
            f"entity rows: '{column}' is {dtype}, not a timestamp; parse it to a UTC datetime."
        )
    if dtype.time_zone is None:
        raise ExecutionError(
            f"entity rows: '{column}' has no time zone; skewless does not guess one. Localize it, e.g. "
            f"df.with_columns(pl.col('{column}').dt.replace_time_zone('UTC'))."
        )
    _refuse_nulls(frame, column)
    return frame.with_columns(pl.col(column).dt.convert_time_zone("UTC").cast(TIMESTAMP))


def entity_rows(frame: pl.DataFrame, entities: tuple[Entity, ...], column: str) -> pl.DataFrame:
    """The executor's ``__rows`` for one view: ``__row``, the join keys (typed), ``__t`` in µs."""
    for entity in entities:
        key = entity.join_key
        if key not in frame.columns:
            raise ExecutionError(
                f"entity rows have no join key '{key}' (entity '{entity.name}'); columns are {', '.join(frame.columns)}."
            )
        if frame.schema[key] != entity.dtype:
            raise ExecutionError(
                f"entity rows: join key '{key}' is {frame.schema[key]} but entity '{entity.name}' declares "
                f"{entity.dtype}; cast the column."
            )
        _refuse_nulls(frame, key)
    return frame.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("__row"),
        *[pl.col(e.join_key) for e in entities],
        pl.col(column).dt.epoch("us").alias("__t"),
    )
