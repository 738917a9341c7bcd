"""Windowed aggregations as declared: which function, over which column, window and tile size.

The window rule they follow is written in docs/semantics.md; this module only checks that a
declaration is well formed and names its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

from skewless._errors import DefinitionError
from skewless.transforms._checks import check_name
from skewless.transforms.aggregations import AGGREGATORS
from skewless.transforms.dtypes import is_numeric
from skewless.transforms.durations import format_duration, parse_duration

__all__ = ["FUNCTIONS", "Aggregation"]

#: Aggregation functions a definition may name.
FUNCTIONS = tuple(AGGREGATORS)
_NUMERIC_ONLY = ("sum", "mean")
_DEFAULT_GRANULARITIES = tuple(timedelta(seconds=s) for s in (86400, 3600, 300, 60, 1))


@dataclass(frozen=True)
class Aggregation:
    """One windowed aggregate of a column, e.g. the sum of ``amount_usd`` over the last hour.

    Parameters
    ----------
    function
        One of count, sum, mean, min, max, distinct_count, last.
    column
        Input column (a source column or a transform output). ``count`` without a column
        counts events; with one it counts the non-null values.
    window
        Window length, e.g. ``"1h"``.
    granularity
        Tile size; must divide the window. By default the largest of 1d, 1h, 5m, 1m, 1s that
        divides the window and is at most a sixth of it.
    name
        Feature name; by default ``{column}_{function}_{window}`` (``{function}_{window}`` for a
        bare count).

    Examples
    --------
    >>> Aggregation("sum", "amount_usd", window="1h").name
    'amount_usd_sum_1h'
    >>> Aggregation("count", window="10m").granularity
    datetime.timedelta(seconds=60)
    """

    function: str
    column: str | None = None
    window: timedelta | str = "1h"
    granularity: timedelta | str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        what = self._describe()
        if self.function not in FUNCTIONS:
            raise DefinitionError(
                f"{what}: unknown function '{self.function}'; use one of {', '.join(FUNCTIONS)}."
            )
        if self.column is None and self.function != "count":
            raise DefinitionError(f"{what}: '{self.function}' needs a column=.")
        if self.column is not None:
            check_name(self.column, what=f"{what}: column")
        window = parse_duration(self.window, what=f"{what}: window")
        granularity = (
            parse_duration(self.granularity, what=f"{what}: granularity")
            if self.granularity is not None
            else _default_granularity(window)
        )
        if granularity > window or window % granularity:
            raise DefinitionError(
                f"{what}: granularity '{format_duration(granularity)}' does not divide window "
                f"'{format_duration(window)}'; pick a tile size that divides it, e.g. "
                f"'{format_duration(_default_granularity(window))}'."
            )
        # The name keeps the window as the user spelled it: "24h" stays count_24h, not count_1d.
        label = self.window.strip() if isinstance(self.window, str) else format_duration(window)
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "granularity", granularity)
        default_name = "_".join(part for part in (self.column, self.function, label) if part)
        object.__setattr__(self, "name", check_name(self.name or default_name, what=f"{what}: feature"))

    def _describe(self) -> str:
        window = format_duration(self.window) if isinstance(self.window, timedelta) else self.window
        args = ", ".join(repr(a) for a in (self.column, window) if a is not None)
        return f"aggregation {self.function}({args})"

    def output_dtype(self, input_dtype: pl.DataType | None, *, view: str) -> pl.DataType:
        """The feature's type given its input column's type; rejects impossible pairs."""
        if self.function in ("count", "distinct_count"):
            return pl.Int64()
        assert input_dtype is not None  # only count may lack a column, checked above
        if self.function in _NUMERIC_ONLY and not is_numeric(input_dtype):
            raise DefinitionError(
                f"view '{view}': {self._describe()} needs a numeric column, but "
                f"'{self.column}' is {input_dtype}; cast it in the transform or use another function."
            )
        if self.function == "mean":
            return pl.Float64()
        if self.function == "sum" and not input_dtype.is_float():
            return pl.Int64()
        return input_dtype

    def spec(self) -> dict[str, Any]:
        """The declaration as plain data: what the definition version hashes."""
        assert isinstance(self.window, timedelta) and isinstance(self.granularity, timedelta)
        return {
            "function": self.function,
            "column": self.column,
            "window": format_duration(self.window),
            "granularity": format_duration(self.granularity),
            "name": self.name,
        }


def _default_granularity(window: timedelta) -> timedelta:
    """Largest standard tile that divides ``window`` at least six times (1s for tiny windows)."""
    for candidate in _DEFAULT_GRANULARITIES:
        if candidate * 6 <= window and window % candidate == timedelta(0):
            return candidate
    return timedelta(seconds=1)
