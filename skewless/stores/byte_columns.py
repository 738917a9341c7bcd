"""Columns of byte strings, built for a whole column at once (Arrow ``large_binary``).

Materialization writes every row of a view as bytes: a serialized value per feature, a key,
the Redis protocol around them. Built one Python object per value, that cost more than Redis
took to store them; here each step is one numpy or Arrow kernel over the column, and a row's
pieces are joined by Arrow in C++.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "BYTES",
    "decimal_text",
    "fixed_width",
    "group_spans",
    "join_rows",
    "row_offsets",
    "variable_width",
]

BYTES = pa.large_binary()
_EMPTY = pa.scalar(b"", BYTES)


def fixed_width(rows: np.ndarray) -> pa.Array:
    """One byte string per row of a 2-D uint8 matrix (every string as wide as the matrix)."""
    height, width = rows.shape
    offsets = np.arange(0, (height + 1) * width, width, dtype=np.int64)
    return _from_buffers(offsets, np.ascontiguousarray(rows, dtype=np.uint8))


def variable_width(rows: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Row ``i`` is the first ``lengths[i]`` bytes of ``rows[i]`` (a 2-D uint8 matrix)."""
    keep = np.arange(rows.shape[1]) < lengths[:, None]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _from_buffers(offsets, rows[keep])  # row-major: each row's bytes, in row order


def _from_buffers(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(BYTES, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def row_offsets(column: pa.Array) -> np.ndarray:
    """Where each row of a ``large_binary`` column (or a slice of one) begins in its data, then
    where the last ends."""
    return np.frombuffer(column.buffers()[1], dtype=np.int64, count=len(column) + 1, offset=column.offset * 8)


def group_spans(rows: pa.Array, starts: np.ndarray) -> pa.Array:
    """One byte string per group of ``rows`` (``large_binary``, rows end to end in its data, as
    ``join_rows`` leaves them): the span of the group's rows, without a copy. ``starts``: where
    each group begins, then the row count."""
    spans = pa.py_buffer(row_offsets(rows)[starts])
    return pa.Array.from_buffers(BYTES, len(starts) - 1, [None, spans, rows.buffers()[2]])


def decimal_text(values: pa.Array) -> pa.Array:
    """Each integer as its decimal digits (as Redis reads numbers)."""
    return pc.cast(pc.cast(values, pa.large_string()), BYTES)


def join_rows(parts: Sequence[bytes | pa.Array]) -> pa.Array:
    """Row ``i`` is the concatenation of every part's row ``i``; a ``bytes`` part is the same in
    every row. A null element counts as empty. At least one part must be a column."""
    merged: list[bytes | pa.Array] = []
    for part in parts:  # adjacent constants become one, so Arrow joins fewer pieces per row
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += part
        else:
            merged.append(part if isinstance(part, bytes) else pc.cast(part, BYTES))
    if all(isinstance(part, bytes) for part in merged):
        raise ValueError("join_rows needs at least one column")
    pieces = [pa.scalar(p, BYTES) if isinstance(p, bytes) else p for p in merged]
    return pc.binary_join_element_wise(*pieces, _EMPTY, null_handling="replace")
