"""Feast's Redis format: skewless's encoders write the bytes Feast's own would, byte for byte,
and its fast decoders read every value exactly as protobuf does; event times read back from
``_ts``, in Python and in the write script's Lua."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skewless.stores.feast_format import (
    WRITE_SCRIPT,
    _parse_value,
    encode_entity_key,
    encode_entity_keys,
    encode_timestamps,
    encode_values,
    timestamp_us,
    value_decoder,
)

VALUES = {
    "Float64": (pl.Float64(), st.floats(allow_nan=False)),
    "Float32": (pl.Float32(), st.floats(width=32, allow_nan=False)),
    "Int64": (pl.Int64(), st.integers(-(2**63), 2**63 - 1)),
    "Int32": (pl.Int32(), st.integers(-(2**31), 2**31 - 1)),
    "Boolean": (pl.Boolean(), st.booleans()),
    "String": (pl.String(), st.text(max_size=300)),
    "Datetime": (
        pl.Datetime("us", "UTC"),
        st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    ),
}


@settings(deadline=None)
@given(
    st.sampled_from(sorted(VALUES)).flatmap(lambda name: st.tuples(st.just(name), st.lists(VALUES[name][1])))
)
def test_fast_decoders_equal_protobuf(case: tuple[str, list[object]]) -> None:
    name, values = case
    dtype = VALUES[name][0]
    for raw in encode_values(pl.Series(values + [None], dtype=dtype)).to_pylist():
        expected = _parse_value(raw) if raw else None
        assert value_decoder(name)(raw) == expected


def test_unexpected_bytes_take_the_protobuf_path() -> None:
    # An int64 written by another writer as a float field still decodes (protobuf decides).
    assert value_decoder("Int64")(encode_values(pl.Series([2.5]))[0].as_py()) == 2.5
    assert value_decoder("String")(b"") is None


_FEAST_TYPES = {
    "Float64": "DOUBLE", "Float32": "FLOAT", "Int64": "INT64", "Int32": "INT32",
    "Boolean": "BOOL", "String": "STRING", "Datetime": "UNIX_TIMESTAMP",
}  # fmt: skip


@settings(deadline=None)
@given(
    st.sampled_from(sorted(VALUES)).flatmap(lambda name: st.tuples(st.just(name), st.lists(VALUES[name][1])))
)
def test_encoders_write_what_feast_writes(case: tuple[str, list[object]]) -> None:
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    name, values = case
    ours = encode_values(pl.Series(values + [None], dtype=VALUES[name][0])).to_pylist()
    theirs = python_values_to_proto_values(values + [None], ValueType[_FEAST_TYPES[name]])
    assert ours == [v.SerializeToString() for v in theirs]


@settings(deadline=None)  # timing belongs in bench/, not in a test (a first example imports Feast)
@given(st.lists(st.integers(-(2**40), 2**53)))
def test_timestamps_are_protobuf_timestamps(event_us: list[int]) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    expected = [
        Timestamp(seconds=us // 10**6, nanos=us % 10**6 * 1000).SerializeToString() for us in event_us
    ]
    assert encode_timestamps(pl.Series(event_us, dtype=pl.Int64)).to_pylist() == expected


@given(st.integers(-(2**50), 2**53))
def test_timestamps_read_back(event_us: int) -> None:
    (raw,) = encode_timestamps(pl.Series([event_us], dtype=pl.Int64)).to_pylist()
    assert timestamp_us(raw) == event_us


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(-(2**50), 2**53), st.integers(-(2**50), 2**53))
def test_the_write_script_keeps_the_newer_row(redis_url: str, stored_us: int, new_us: int) -> None:
    """Before 1970 too: a negative time's seconds are a ten-byte varint."""
    client = redis.Redis.from_url(redis_url)
    key = f"test-feast-format-{stored_us}-{new_us}"
    client.delete(key)

    def write(us: int) -> int:
        (ts,) = encode_timestamps(pl.Series([us], dtype=pl.Int64)).to_pylist()
        return int(
            client.eval(WRITE_SCRIPT, 1, key, b"_ts:v", str(us), b"", b"", b"_ts:v", ts, b"f", str(us))
        )

    try:
        assert write(stored_us) == 1
        assert write(new_us) == (new_us >= stored_us)
        assert client.hget(key, b"f") == str(max(stored_us, new_us)).encode()
    finally:
        client.delete(key)


def test_the_write_script_resolves_ties_by_arrival_and_never_counts_a_copy(redis_url: str) -> None:
    """docs/semantics.md §3 and §6, whatever order the writes come in: on equal event times the
    later arrival wins, and a copy of an event counted at the stored time never does."""
    client = redis.Redis.from_url(redis_url)
    key = "test-feast-format-marks"
    (ts,) = encode_timestamps(pl.Series([7], dtype=pl.Int64)).to_pylist()

    def write(arrival: int, identity: str, value: str, us: int = 7) -> int:
        mark = f"{arrival:020d}{0:020d}\x1f{identity}"
        (stamp,) = encode_timestamps(pl.Series([us], dtype=pl.Int64)).to_pylist()
        args = [b"_ts:v", str(us), b"_skl:v", mark, b"_ts:v", stamp, b"f", value]
        return int(client.eval(WRITE_SCRIPT, 1, key, *args))

    client.delete(key)
    try:
        assert write(2, "=b", "B") == 1
        assert write(1, "=a", "A") == 0  # arrived before the stored row: B stays
        assert write(3, "=a", "A copy") == 0  # a copy of a, counted above: never counts
        assert write(4, "=c", "C") == 1  # a later arrival at the same time wins
        assert write(5, "=b", "B copy") == 0  # b was counted at this time too
        assert client.hget(key, b"f") == b"C" and client.hget(key, b"_ts:v") == ts
        assert write(6, "=b", "B later", us=8) == 1  # a later event time: a new mark
        assert client.hget(key, b"_skl:v") == f"{6:020d}{0:020d}\x1f=b".encode()
    finally:
        client.delete(key)


@settings(deadline=None)  # timing belongs in bench/, not in a test (a first example imports Feast)
@given(st.text(max_size=50), st.integers(-(2**63), 2**63 - 1))
def test_entity_keys_are_feasts(card: str, merchant: int) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(
        join_keys=["card_id", "merchant_id"],
        entity_values=[Value(string_val=card), Value(int64_val=merchant)],
    )
    expected = serialize_entity_key(key, entity_key_serialization_version=3) + b"proj"
    ours = encode_entity_key(["merchant_id", "card_id"], [merchant, card], [pl.Int64(), pl.String()], "proj")
    assert ours == expected


@settings(deadline=None)  # timing belongs in bench/, not in a test (a first example imports Feast)
@given(
    st.lists(
        st.tuples(st.text(max_size=30), st.integers(-(2**31), 2**31 - 1), st.integers(-(2**63), 2**63 - 1))
    )
)
def test_keys_encoded_by_column_equal_keys_encoded_one_by_one(rows: list[tuple[str, int, int]]) -> None:
    join_keys, dtypes = ["card_id", "shard", "merchant_id"], [pl.String(), pl.Int32(), pl.Int64()]
    frame = pl.DataFrame(rows, schema=dict(zip(join_keys, dtypes, strict=True)), orient="row")
    ours = encode_entity_keys(frame, join_keys, dtypes, "proj").to_pylist()
    assert ours == [encode_entity_key(join_keys, row, dtypes, "proj") for row in rows]
