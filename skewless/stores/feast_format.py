"""Plain views in Feast's documented Redis format, so Feast's own SDK reads what skewless wrote.

Feast keeps one Redis hash per entity key: the key is the serialized entity key (version 3)
followed by the project name; each feature is a field named by the murmur3 hash of
``"<view>:<feature>"`` holding a serialized ``ValueProto``, and ``_ts:<view>`` holds a
``Timestamp`` proto. skewless adds one field Feast ignores, ``_skl:<view>``: the event time in
µs, so concurrent writers keep the newest row (compare-and-set in ``WRITE_SCRIPT``).

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
import polars as pl

from skewless.transforms.dtypes import dtype_name

__all__ = [
    "WRITE_SCRIPT",
    "decode_value",
    "value_decoder",
    "encode_entity_key",
    "entity_key_encoder",
    "encode_timestamp",
    "encode_values",
    "feature_field",
    "order_field",
    "ts_field",
]

_ENTITY_VALUE_TYPES = {"String": 2, "Int32": 3, "Int64": 4}  # Feast ValueType numbers


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative integers are ten bytes, as protobuf encodes int64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


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


@functools.cache
def entity_key_encoder(
    join_keys: tuple[str, ...], dtype_names: tuple[str, ...], project: str
) -> Callable[[Sequence[Any]], bytes]:
    """``encode_entity_key`` for one view's keys, with everything but the values done once
    (cached: reads encode a key per entity row)."""
    order = sorted(range(len(join_keys)), key=lambda i: join_keys[i])
    head = struct.pack("<I", len(order)) + b"".join(
        struct.pack("<II", 2, len(raw)) + raw for raw in (join_keys[i].encode() for i in order)
    )
    encoders = [(i, _entity_value(dtype_names[i])) for i in order]
    tail = project.encode()
    return lambda values: b"".join([head, *(encode(values[i]) for i, encode in encoders), tail])


@functools.cache
def feature_field(view: str, feature: str) -> bytes:
    """Feast's hash field for a feature: the first 4 bytes of little-endian murmur3 (cached:
    every online read asks for the same few)."""
    return struct.pack("<Q", mmh3.hash(f"{view}:{feature}", signed=False))[:4]


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def order_field(view: str) -> bytes:
    return f"_skl:{view}".encode()


def encode_timestamp(event_us: int) -> bytes:
    """A ``google.protobuf.Timestamp`` (zero fields omitted, as protobuf does)."""
    seconds, micros = divmod(event_us, 1_000_000)
    out = b"\x08" + _varint(seconds) if seconds else b""
    return out + (b"\x10" + _varint(micros * 1000) if micros else b"")


def _encoder(dtype: pl.DataType) -> Any:
    name = dtype_name(dtype)
    if name == "Float64":
        return lambda v: b"\x29" + struct.pack("<d", v)
    if name == "Float32":
        return lambda v: b"\x35" + struct.pack("<f", v)
    if name == "Int64":
        return lambda v: b"\x20" + _varint(v)
    if name == "Int32":
        return lambda v: b"\x18" + _varint(v)
    if name == "Boolean":
        return lambda v: b"\x38\x01" if v else b"\x38\x00"
    if name == "String":
        return lambda v: b"\x12" + _varint(len(raw := v.encode())) + raw
    return lambda v: b"\x40" + _varint(int(v.timestamp()))  # Datetime: Feast keeps whole seconds


def encode_values(series: pl.Series) -> list[bytes]:
    """Serialized ``ValueProto`` of each value; a null is the empty message, as Feast writes it."""
    encode = _encoder(series.dtype)
    return [b"" if v is None else encode(v) for v in series.to_list()]


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


#: Write one entity's row if it is not older than the stored one (ties: the later write wins).
#: KEYS[1] = entity hash; ARGV = order field, event µs, then field/value pairs.
WRITE_SCRIPT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and tonumber(current) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 3))
return 1
"""
