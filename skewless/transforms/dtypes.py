"""The column types a definition may use: polars types, named once, mapped to Feast's.

Definitions declare columns with polars types (what a data scientist already writes). Only the
types below are accepted, because both executors, Redis encoding and Feast must agree on each.
Timestamps are always ``pl.Datetime("us", "UTC")``: naive times are ambiguous (docs/semantics.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from skewless._errors import DefinitionError

if TYPE_CHECKING:  # Feast takes seconds to import: only the Feast bridge pays for it
    from feast.types import FeastType
    from feast.value_type import ValueType

__all__ = [
    "TIMESTAMP",
    "dtype_name",
    "is_numeric",
    "to_feast_type",
    "to_feast_value_type",
    "validate_dtype",
]

TIMESTAMP = pl.Datetime("us", "UTC")

# polars type name -> (Feast feature type name, Feast ValueType member name)
_FEAST_TYPES: dict[str, tuple[str, str]] = {
    "Int32": ("Int32", "INT32"),
    "Int64": ("Int64", "INT64"),
    "Float32": ("Float32", "FLOAT"),
    "Float64": ("Float64", "DOUBLE"),
    "String": ("String", "STRING"),
    "Boolean": ("Bool", "BOOL"),
    "Datetime": ("UnixTimestamp", "UNIX_TIMESTAMP"),
}


def dtype_name(dtype: pl.DataType | type[pl.DataType]) -> str:
    """Stable name of a supported type, used in hashes and messages.

    >>> dtype_name(pl.Int64), dtype_name(pl.Datetime("us", "UTC"))
    ('Int64', 'Datetime')
    """
    return dtype.base_type().__name__


def validate_dtype(dtype: object, *, what: str) -> pl.DataType:
    """Return ``dtype`` as a polars type instance, or raise naming ``what`` and the allowed types."""
    if isinstance(dtype, type) and issubclass(dtype, pl.DataType):
        dtype = dtype()
    if not isinstance(dtype, pl.DataType) or dtype_name(dtype) not in _FEAST_TYPES:
        allowed = ", ".join(f"pl.{name}" for name in _FEAST_TYPES)
        raise DefinitionError(f"{what}: type {dtype!r} is not supported; use one of {allowed}.")
    if isinstance(dtype, pl.Datetime) and dtype.time_zone != "UTC":
        raise DefinitionError(
            f"{what}: timestamps must be UTC; declare pl.Datetime('us', 'UTC') "
            "(naive or other-zone times are ambiguous)."
        )
    return dtype


def is_numeric(dtype: pl.DataType) -> bool:
    """True for types that sum and mean accept (booleans count as 0/1)."""
    return dtype.is_numeric() or dtype == pl.Boolean


def to_feast_type(dtype: pl.DataType) -> FeastType:
    """Feast's feature type for a supported polars type."""
    from feast import types as feast_types

    return getattr(feast_types, _FEAST_TYPES[dtype_name(dtype)][0])  # type: ignore[no-any-return]


def to_feast_value_type(dtype: pl.DataType) -> ValueType:
    """Feast's entity value type for a supported polars type."""
    from feast.value_type import ValueType

    return ValueType[_FEAST_TYPES[dtype_name(dtype)][1]]
