"""Feast's value encoding: skewless's fast decoders read every value exactly as protobuf does."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from skewless.stores.feast_format import _parse_value, encode_values, value_decoder

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
    for raw in encode_values(pl.Series(values + [None], dtype=dtype)):
        expected = _parse_value(raw) if raw else None
        assert value_decoder(name)(raw) == expected


def test_unexpected_bytes_take_the_protobuf_path() -> None:
    # An int64 written by another writer as a float field still decodes (protobuf decides).
    assert value_decoder("Int64")(encode_values(pl.Series([2.5]))[0]) == 2.5
    assert value_decoder("String")(b"") is None
