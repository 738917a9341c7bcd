"""Plain views in Feast's documented Redis format, so Feast's own SDK reads what skewless wrote.

Feast keeps one Redis hash per entity key: the key is the serialized entity key (version 3)
followed by the project name; each feature is a field named by the murmur3 hash of
``"<view>:<feature>"`` holding a serialized ``ValueProto``, and ``_ts:<view>`` holds a
``Timestamp`` proto, the row's event time. skewless writes exactly these fields, and reads the
event time back from ``_ts`` (in Python, ``timestamp_us``; in Lua, where concurrent writers keep
the newest row by compare-and-set, ``WRITE_SCRIPT``), so it also serves rows Feast wrote.

Encoders are written out here (the proto wire format of these few types) because they run for
every row of a materialization; tests check them byte for byte against Feast's own.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import mmh3
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from skewless.stores.byte_columns import BYTES, fixed_width, join_rows, variable_width
from skewless.transforms.dtypes import dtype_name

__all__ = [
    "WRITE_SCRIPT",
    "decode_value",
    "value_decoder",
    "encode_entity_key",
    "entity_key_encoder",
    "encode_entity_keys",
    "encode_timestamps",
    "encode_values",
    "feature_field",
    "mark_field",
    "timestamp_us",
    "ts_field",
]

_ENTITY_VALUE_TYPES = {"String": 2, "Int32": 3, "Int64": 4}  # Feast ValueType numbers


def encode_entity_key(
    join_keys: Sequence[str], values: Sequence[Any], dtypes: Sequence[pl.DataType], project: str
) -> bytes:
    """Feast's Redis key for one entity (entity key serialization version 3, then the project)."""
    return entity_key_encoder(tuple(join_keys), tuple(dtype_name(d) for d in dtypes), project)(values)


def _entity_value(name: str) -> Callable[[Any], bytes]:
    """Length-prefixed bytes of one join-key value of dtype ``name``, as Feast serializes it."""
    if name == "String":
        return lambda v: struct.pack("<II", _ENTITY_VALUE_TYPES[name], len(raw := str(v).encode())) + raw
    layout = "<i" if name == "Int32" else "<q"
    prefix = struct.pack("<II", _ENTITY_VALUE_TYPES[name], struct.calcsize(layout))
    return lambda v: prefix + struct.pack(layout, int(v))


def _key_head(join_keys: Sequence[str]) -> tuple[list[int], bytes]:
    """Feast sorts the join keys by name: their order, and the bytes naming them."""
    order = sorted(range(len(join_keys)), key=lambda i: join_keys[i])
    head = struct.pack("<I", len(order)) + b"".join(
        struct.pack("<II", 2, len(raw)) + raw for raw in (join_keys[i].encode() for i in order)
    )
    return order, head


@functools.cache
def entity_key_encoder(
    join_keys: tuple[str, ...], dtype_names: tuple[str, ...], project: str
) -> Callable[[Sequence[Any]], bytes]:
    """``encode_entity_key`` for one view's keys, with everything but the values done once
    (cached: reads encode a key per entity row)."""
    order, head = _key_head(join_keys)
    encoders = [(i, _entity_value(dtype_names[i])) for i in order]
    tail = project.encode()
    return lambda values: b"".join([head, *(encode(values[i]) for i, encode in encoders), tail])


def encode_entity_keys(
    frame: pl.DataFrame, join_keys: Sequence[str], dtypes: Sequence[pl.DataType], project: str
) -> pa.Array:
    """``encode_entity_key`` of every row of ``frame`` (its ``join_keys`` columns), column-wise."""
    order, head = _key_head(join_keys)
    parts: list[bytes | pa.Array] = [head]
    for i in order:
        column = frame[join_keys[i]].cast(dtypes[i])
        name = dtype_name(dtypes[i])
        if name == "String":
            raw = column.to_arrow()
            lengths = pc.binary_length(raw).to_numpy().astype("<u4")
            parts += [struct.pack("<I", _ENTITY_VALUE_TYPES[name]), _little_endian(lengths), raw]
        else:
            layout = "<i4" if name == "Int32" else "<i8"
            values = column.to_numpy().astype(layout)
            parts += [struct.pack("<II", _ENTITY_VALUE_TYPES[name], values.itemsize), _little_endian(values)]
    return join_rows([*parts, project.encode()])


def _little_endian(values: np.ndarray) -> pa.Array:
    return fixed_width(_bytes_of(values))


def _bytes_of(values: np.ndarray) -> np.ndarray:
    """Each value's bytes (in the array's byte order) as a row of a uint8 matrix."""
    return values.view(np.uint8).reshape(len(values), values.itemsize)


@functools.cache
def feature_field(view: str, feature: str) -> bytes:
    """Feast's hash field for a feature: the first 4 bytes of little-endian murmur3 (cached:
    every online read asks for the same few)."""
    return struct.pack("<Q", mmh3.hash(f"{view}:{feature}", signed=False))[:4]


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def mark_field(view: str) -> bytes:
    """skewless's own field beside Feast's: which events a streamed row won against (``WRITE_SCRIPT``)."""
    return f"_skl:{view}".encode()


def encode_timestamps(event_us: pl.Series) -> pa.Array:
    """A ``google.protobuf.Timestamp`` per event time in µs (zero fields omitted, as protobuf does)."""
    seconds, micros = np.divmod(event_us.cast(pl.Int64).to_numpy(), 1_000_000)
    return join_rows([
        _tagged_varints(0x08, seconds, omit_zero=True),
        _tagged_varints(0x10, micros * 1000, omit_zero=True),
    ])  # fmt: skip


_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)  # a 64-bit varint has at most ten 7-bit groups


def _tagged_varints(tag: int, values: np.ndarray, *, omit_zero: bool = False) -> pa.Array:
    """``tag`` and the protobuf varint of each int64 (negatives as ten bytes, as protobuf encodes
    int64 and int32); ``omit_zero`` gives b"" for 0."""
    unsigned = values.astype(np.int64).view(np.uint64)
    # Only as many 7-bit groups as the largest value needs: times take 5 of the 10, which
    # halves the work (materialization encodes four of these columns per batch).
    width = max(1, (int(unsigned.max(initial=0)).bit_length() + 6) // 7)
    v = unsigned[:, None] >> _SHIFTS[:width]
    groups = np.maximum(1, (v > 0).sum(axis=1))
    rows = np.empty((len(v), width + 1), np.uint8)
    rows[:, 0] = tag
    more = np.arange(width) < groups[:, None] - 1  # a continuation bit on all but the last group
    rows[:, 1:] = (v & np.uint64(0x7F)).astype(np.uint8) | (more.astype(np.uint8) << 7)
    lengths = 1 + groups
    if omit_zero:
        lengths[values == 0] = 0
    return variable_width(rows, lengths)


def _fixed(tag: int, values: np.ndarray) -> pa.Array:
    """``tag`` and each value's little-endian bytes (doubles, floats, booleans)."""
    rows = np.empty((len(values), 1 + values.dtype.itemsize), np.uint8)
    rows[:, 0] = tag
    rows[:, 1:] = _bytes_of(values)
    return fixed_width(rows)


def _strings(tag: int, series: pl.Series) -> pa.Array:
    """``tag``, the UTF-8 length as a varint, then the bytes."""
    raw = series.to_arrow()
    return join_rows([_tagged_varints(tag, pc.binary_length(raw).to_numpy()), raw])


def _whole_seconds(series: pl.Series) -> np.ndarray:
    """Feast keeps whole seconds of a datetime, truncated toward zero (``int(ts.timestamp())``)."""
    us = series.dt.epoch("us").to_numpy()
    return np.where(us < 0, -((-us) // 1_000_000), us // 1_000_000)


#: Column encoders: the serialized ``ValueProto`` of every value of a column without nulls.
_COLUMN_ENCODERS: dict[str, Callable[[pl.Series], pa.Array]] = {
    "Float64": lambda s: _fixed(0x29, s.to_numpy().astype("<f8")),
    "Float32": lambda s: _fixed(0x35, s.to_numpy().astype("<f4")),
    "Int64": lambda s: _tagged_varints(0x20, s.to_numpy()),
    "Int32": lambda s: _tagged_varints(0x18, s.to_numpy()),
    "Boolean": lambda s: _fixed(0x38, s.to_numpy().astype(np.uint8)),
    "String": lambda s: _strings(0x12, s),
    "Datetime": lambda s: _tagged_varints(0x40, _whole_seconds(s)),
}


def encode_values(series: pl.Series) -> pa.Array:
    """Serialized ``ValueProto`` of each value; a null is the empty message, as Feast writes it."""
    encode = _COLUMN_ENCODERS[dtype_name(series.dtype)]
    if not series.null_count():
        return encode(series)
    present = pa.concat_arrays([encode(series.drop_nulls()), pa.array([b""], BYTES)])
    nulls = series.is_null().to_numpy()
    slots = np.where(nulls, len(present) - 1, np.cumsum(~nulls) - 1)  # a null takes the b"" at the end
    return present.take(pa.array(slots))


def decode_value(raw: bytes | None, dtype: pl.DataType) -> Any:
    """A ``ValueProto`` back to Python (None for an empty message or a missing field)."""
    return value_decoder(dtype_name(dtype))(raw)


def _parse_value(raw: bytes) -> Any:
    """Any ``ValueProto`` through protobuf itself: the general path."""
    from feast.protos.feast.types.Value_pb2 import Value

    message = Value()
    message.ParseFromString(raw)
    kind = message.WhichOneof("val")
    if kind is None:
        return None
    value = getattr(message, kind)
    return datetime.fromtimestamp(value, UTC) if kind == "unix_timestamp_val" else value


def _signed_varint(raw: bytes, tag: int) -> int | None:
    """The int64 after ``tag`` when ``raw`` is exactly that one field, else None."""
    if raw[0] != tag or len(raw) > 11:
        return None
    value, shift = 0, 0
    for i, byte in enumerate(raw[1:], 1):
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if i != len(raw) - 1:
                return None
            return value - (1 << 64) if value >= 1 << 63 else value
    return None


def _fast_decoder(name: str) -> Callable[[bytes], Any]:
    """Decode the one-field messages ``encode_values`` (and Feast) write for ``name`` without
    protobuf; anything else (None) goes the general path."""
    if name in ("Float64", "Float32"):
        tag, layout, size = (0x29, "<d", 9) if name == "Float64" else (0x35, "<f", 5)
        return lambda raw: (
            struct.unpack_from(layout, raw, 1)[0] if raw[0] == tag and len(raw) == size else None
        )
    if name == "Boolean":
        return lambda raw: {b"\x38\x01": True, b"\x38\x00": False}.get(raw)
    if name in ("Int64", "Int32"):
        tag = 0x20 if name == "Int64" else 0x18
        return lambda raw: _signed_varint(raw, tag)
    if name == "Datetime":
        return lambda raw: (
            None if (s := _signed_varint(raw, 0x40)) is None else datetime.fromtimestamp(s, UTC)
        )
    if name == "String":
        return _string_value
    return lambda raw: None


def _string_value(raw: bytes) -> str | None:
    if raw[0] != 0x12 or len(raw) < 2 or raw[1] & 0x80 or len(raw) != 2 + raw[1]:
        return None  # not a short string: the general path
    return raw[2:].decode()


@functools.cache
def value_decoder(name: str) -> Callable[[bytes | None], Any]:
    """The decoder of stored values of dtype ``name`` (cached: every read uses the same few)."""
    fast = _fast_decoder(name)

    def decode(raw: bytes | None) -> Any:
        if not raw:
            return None
        value = fast(raw)
        return _parse_value(raw) if value is None else value

    return decode


def timestamp_us(raw: bytes) -> int:
    """A ``google.protobuf.Timestamp`` (fields absent when zero) in µs since the epoch."""
    fields, i = {1: 0, 2: 0}, 0
    while i < len(raw):
        number, value, shift = raw[i] >> 3, 0, 0
        i += 1
        while True:
            byte = raw[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        fields[number] = value - (1 << 64) if value >= 1 << 63 else value
    return fields[1] * 1_000_000 + fields[2] // 1000


#: Write one entity's row unless the stored one wins (docs/semantics.md §6: the later event time;
#: on a tie, the later arrival; and a copy of a counted event never counts).
#: KEYS[1] = entity hash; ARGV = the view's ``_ts`` field, the row's event µs, the view's mark
#: field (``_skl:<view>``, or empty), the row's mark, then field/value pairs (``_ts`` among them).
#: A mark is the row's arrival (ingest µs and position, 20 digits each: compared as text) then,
#: each after a \31, the identities of the counted events at the stored event time (escaped:
#: online/plain.py). Only those can matter: an event with an earlier time loses anyway, one with
#: a later time starts a new mark. A row without a mark (written by Feast, or a view whose
#: source has no stream) loses every tie. ``micros`` is ``timestamp_us``: a varint of ten bytes
#: is a negative int64, summed as its complement so that Lua's doubles stay exact.
WRITE_SCRIPT = """
local function micros(ts)
  local field, i = {0, 0}, 1
  while i <= #ts do
    local number = math.floor(string.byte(ts, i) / 8)
    local value, complement, scale, count = 0, 0, 1, 0
    i = i + 1
    repeat
      local byte = string.byte(ts, i)
      i = i + 1
      count = count + 1
      if count < 10 then
        value = value + (byte % 128) * scale
        complement = complement + (127 - byte % 128) * scale
      end
      scale = scale * 128
    until byte < 128
    if count == 10 then value = -(complement + 1) end
    field[number] = value
  end
  return field[1] * 1000000 + math.floor(field[2] / 1000)
end
local mark = ARGV[4]
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local stored = micros(current)
  if stored > tonumber(ARGV[2]) then return 0 end
  local known = ARGV[3] ~= '' and stored == tonumber(ARGV[2]) and redis.call('HGET', KEYS[1], ARGV[3])
  if known then
    local identity = string.sub(mark, 42)
    for seen in string.gmatch(string.sub(known, 41), '\\31([^\\31]*)') do
      if seen == identity then return 0 end
    end
    if string.sub(known, 1, 40) > string.sub(mark, 1, 40) then
      redis.call('HSET', KEYS[1], ARGV[3], known .. '\\31' .. identity)
      return 0
    end
    mark = string.sub(mark, 1, 40) .. string.sub(known, 41) .. '\\31' .. identity
  end
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], mark) end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
return 1
"""
