"""Small Redis hashes as ``RESTORE`` payloads: a first load at half Redis's cost of ``HSET``.

An ``HSET`` of 7 fields makes Redis parse 16 arguments and insert each field; ``RESTORE`` of a
hash Redis keeps as a listpack (every field and value under 64 bytes, at most 64 fields; Redis
itself keeps up to 128 that way by default) copies one prepared blob, and sets its expiry too.
Plain views' rows (``hash_payloads``: the same fields in every row) and windowed views' tiles
(``grouped_hash_payloads``: each key's fields from its rows) are written this way. Measured on 100,000 keys of
the materialization benchmark's shape (Redis 7.0, by hand): 0.26-0.33 s of Redis CPU with
``HSET``, 0.14-0.16 s with ``RESTORE``.

The payload is what ``DUMP`` returns: the RDB type of a listpack hash (16), the listpack as an
RDB string, the RDB version (10: Redis 7.0, which every later Redis loads) and a CRC-64 (Jones,
Redis's) of everything before it. ``RESTORE`` refuses a key that exists (``BUSYKEY``), where
``HSET`` would have kept the hash's other fields (another view's), and a user or service may
forbid it; the caller writes each refused row with ``HSET`` instead (stores/bulk.py). Redis
before 7.0 reads no listpack: there every row is an ``HSET``.
"""

from __future__ import annotations

from collections.abc import Sequence

import anycrc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from skewless.stores.byte_columns import fixed_width, group_spans, join_rows, row_offsets, variable_width

__all__ = ["SMALL", "grouped_hash_payloads", "hash_payloads", "restores_hashes"]

SMALL = 64  # longest field or value (exclusive) a listpack entry of one header byte holds
_MAX_ENTRIES = 128  # Redis's default hash-max-listpack-entries
_TYPE_HASH_LISTPACK = b"\x10"
_END = b"\xff" + (10).to_bytes(2, "little")  # the listpack's end, then the RDB version
_CRC = anycrc.Model("CRC64-REDIS")


def restores_hashes(client: redis.Redis) -> bool:
    """Whether this Redis loads listpack payloads (7.0 and later). Asked with ``HELLO``, which
    every user may run (``INFO`` is often forbidden); a Redis before 6 does not know it."""
    try:
        hello = client.execute_command("HELLO")  # type: ignore[no-untyped-call]
    except redis.ResponseError:
        return False
    pairs = zip(hello[::2], hello[1::2], strict=True) if isinstance(hello, list) else hello.items()
    fields = {_text(key): _text(value) for key, value in pairs}
    return int(fields.get("version", "0").split(".")[0]) >= 7


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def hash_payloads(fields: Sequence[bytes], values: Sequence[pa.Array]) -> pa.Array | None:
    """Each row's hash (``fields[i]`` set to its ``values[i]``, no nulls) as a ``RESTORE``
    payload; None when a field is not small, there are too many for one listpack, or no row is
    small. Rows with a value of ``SMALL`` bytes or more are null: the caller writes them another
    way."""
    if len(fields) * 2 > _MAX_ENTRIES or any(len(f) >= SMALL for f in fields):
        return None
    lengths = np.stack([pc.binary_length(v).to_numpy(zero_copy_only=False) for v in values], axis=1)
    too_big = np.any(lengths >= SMALL, axis=1)
    if too_big.all():  # a streamed view's marks, say: no payload to build
        return None
    entries = [_entry(f) for f in fields]
    parts: list[bytes | pa.Array] = []
    for entry, value, length in zip(entries, values, lengths.T, strict=True):
        parts += [entry, *_framed_entry(value, length)]
    inner = sum(len(e) for e in entries) + (lengths + 2).sum(axis=1)
    count = np.full(len(inner), 2 * len(fields))
    return _payloads(parts, inner, count, too_big)


def grouped_hash_payloads(fields: pa.Array, values: pa.Array, starts: np.ndarray) -> pa.Array:
    """One hash per group of rows (``starts``: where each group begins, then the row count),
    each row a field and its value, as a ``RESTORE`` payload; null for a group whose field or
    value is not small, or that holds too many."""
    field_lengths, value_lengths = (
        pc.binary_length(c).to_numpy(zero_copy_only=False) for c in (fields, values)
    )
    items = join_rows([*_framed_entry(fields, field_lengths), *_framed_entry(values, value_lengths)])
    count = 2 * np.diff(starts)
    longest = (
        np.maximum.reduceat(np.maximum(field_lengths, value_lengths), starts[:-1]) if len(count) else count
    )
    entry_bytes = np.diff(row_offsets(items)[starts])
    return _payloads(
        [group_spans(items, starts)], entry_bytes, count, (longest >= SMALL) | (count > _MAX_ENTRIES)
    )


def _framed_entry(data: pa.Array, lengths: np.ndarray) -> list[bytes | pa.Array]:
    """A listpack entry around each string: its length byte, the bytes, the entry's length
    (right for strings under ``SMALL`` bytes; longer ones are in rows the caller drops). Where
    every string is as long (doubles, flags, keys), both bytes are constants, which Arrow joins
    for nothing (the benchmark's 6-feature rows: 21 value columns to join → 11)."""
    small = np.minimum(lengths, SMALL - 1).astype(np.uint8)
    if len(small) and (small == small[0]).all():
        return [bytes([0x80 | small[0]]), data, bytes([1 + small[0]])]
    return [fixed_width((0x80 | small)[:, None]), data, fixed_width((1 + small)[:, None])]


def _payloads(
    entries: list[bytes | pa.Array], entry_bytes: np.ndarray, count: np.ndarray, too_big: np.ndarray
) -> pa.Array:
    """``RESTORE`` payloads around each row's listpack ``entries`` (``entry_bytes`` long,
    ``count`` of them): the type, the listpack as an RDB string, the RDB version and the CRC;
    null where ``too_big``."""
    total = 6 + entry_bytes + 1  # the listpack's bytes: header, entries, end
    header = np.empty((len(total), 6), np.uint8)
    header[:, :4] = total.astype("<u4").view(np.uint8).reshape(-1, 4)
    header[:, 4:] = count.astype("<u2").view(np.uint8).reshape(-1, 2)
    body = join_rows([_TYPE_HASH_LISTPACK, _string_length(total), fixed_width(header), *entries, _END])
    checksums = np.fromiter(map(_CRC.calc, body.to_pylist()), np.dtype("<u8"), len(body))
    payloads = join_rows([body, fixed_width(checksums.view(np.uint8).reshape(-1, 8))])
    return pc.if_else(pa.array(too_big), pa.scalar(None, payloads.type), payloads)


def _entry(data: bytes) -> bytes:
    """A listpack entry of a string under 64 bytes: its length, the bytes, the entry's length."""
    return bytes([0x80 | len(data)]) + data + bytes([1 + len(data)])


def _string_length(lengths: np.ndarray) -> pa.Array:
    """RDB's length prefix of strings under 16,384 bytes: one byte under 64, else two (01 and
    14 bits, big-endian)."""
    rows = np.empty((len(lengths), 2), np.uint8)
    rows[:, 0] = np.where(lengths < 64, lengths, 0x40 | (lengths >> 8))
    rows[:, 1] = lengths & 0xFF
    return variable_width(rows, np.where(lengths < 64, 1, 2))
