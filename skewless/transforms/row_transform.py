"""``@row_transform``: mark a plain polars function as a view's row-level transform.

The decorated function is returned unchanged, so the batch executor, the incremental executor and
a data scientist's test all call the very same object (a single live event is a one-row frame).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from skewless._errors import DefinitionError, TransformError
from skewless.transforms._checks import check_name
from skewless.transforms.dtypes import validate_dtype

__all__ = ["RowTransform", "apply_transform", "row_transform", "transform_outputs", "transform_source"]

RowTransform = Callable[[pl.DataFrame], pl.DataFrame]
_OUTPUTS_ATTR = "__skewless_outputs__"


class row_transform:  # noqa: N801 - a decorator, lowercase like Hamilton's
    """Declare the columns a row-level transform adds, and check the function's shape.

    A row-level transform takes the events as a polars frame and returns the same rows with new
    columns; each output row may depend only on its own input row.

    Examples
    --------
    >>> @row_transform(outputs={"amount_cents": pl.Int64})
    ... def cents(events: pl.DataFrame) -> pl.DataFrame:
    ...     return events.with_columns(amount_cents=(pl.col("amount") * 100).cast(pl.Int64))
    >>> cents(pl.DataFrame({"amount": [1.5]}))["amount_cents"].to_list()
    [150]
    >>> transform_outputs(cents)
    {'amount_cents': Int64}
    """

    def __init__(self, *, outputs: Mapping[str, Any]) -> None:
        if not isinstance(outputs, Mapping) or not outputs:
            raise DefinitionError("@row_transform: outputs= must map each new column to a polars type.")
        self.outputs = dict(outputs)

    def __call__(self, fn: RowTransform) -> RowTransform:
        name = getattr(fn, "__name__", repr(fn))
        what = f"transform '{name}'"
        positional = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        if len(positional) != 1:
            raise DefinitionError(f"{what}: must take exactly one argument, the events frame (pl.DataFrame).")
        outputs = {
            check_name(col, what=f"{what}: output"): validate_dtype(dt, what=f"{what}: output '{col}'")
            for col, dt in self.outputs.items()
        }
        setattr(fn, _OUTPUTS_ATTR, outputs)
        return fn


def transform_outputs(fn: RowTransform) -> dict[str, pl.DataType]:
    """The outputs a ``@row_transform`` declared; a clear error for an undecorated function."""
    outputs = getattr(fn, _OUTPUTS_ATTR, None)
    if outputs is None:
        name = getattr(fn, "__name__", repr(fn))
        raise DefinitionError(
            f"transform '{name}' is not declared; decorate it with "
            "@row_transform(outputs={'column': pl.Type, ...})."
        )
    return dict(outputs)


def apply_transform(fn: RowTransform, events: pl.DataFrame, *, what: str) -> pl.DataFrame:
    """``fn(events)``, held to its contract: the same rows back, with every declared output of
    its declared type. Anything else — the function raising included — is a ``TransformError``
    that starts with ``what`` and says it in one line."""
    try:
        out = fn(events)
    except Exception as exc:  # the repo's code: whatever it raises is its failure
        lines = str(exc).strip().splitlines()  # polars adds the failing expression below
        raise TransformError(f"{what} failed: {lines[0] if lines else type(exc).__name__}") from exc
    if not isinstance(out, pl.DataFrame):
        raise TransformError(f"{what} must return a pl.DataFrame, not {type(out).__name__}.")
    if out.height != events.height:
        raise TransformError(
            f"{what} returned {out.height} rows for {events.height}; a row-level transform "
            "keeps every row (filter in a later step, not here)."
        )
    for column, dtype in transform_outputs(fn).items():
        if column not in out.columns:
            raise TransformError(f"{what} did not return declared output column '{column}'.")
        if out.schema[column] != dtype:
            raise TransformError(
                f"{what} returned '{column}' as {out.schema[column]} but declared {dtype}; "
                "cast it or fix outputs=."
            )
    return out


def transform_source(fn: RowTransform) -> str:
    """The function's source text, hashed into the definition version (a body edit is a change)."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # defined where no source file exists (a REPL): use bytecode
        return fn.__code__.co_code.hex()
