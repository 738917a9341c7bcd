"""Stream entries read a column at a time equal the same entries read one by one (the reference:
exact reasons for bad ones), whatever the mix of values: producer forms, forms only Python reads,
malformed values, integers out of range, empty and missing fields, unknown fields, invalid UTF-8,
stamped ingest times, entries whose fields differ in order or number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from skewless.online.stream_entries import Entry, _parse_by_columns, _parse_each, parse_entries
from skewless.transforms.sources import EventSource

SOURCE = EventSource(
    name="mixed",
    path="mixed.parquet",
    event_time="at",
    schema={
        "name": pl.String,
        "small": pl.Int32,
        "count": pl.Int64,
        "ratio": pl.Float32,
        "amount": pl.Float64,
        "flag": pl.Boolean,
        "at": pl.Datetime("us", "UTC"),
    },
)

_MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1))
_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
_ODD = st.sampled_from(
    ["", " ", "x", "1_000", " 7", "+3", "-0005", "1e3", ".5", "5.", "inf", "NaN", "--5", "٣", "1,5"]
)


def _time_texts() -> st.SearchStrategy[str]:
    aware = st.builds(lambda m, z: m.replace(tzinfo=z).isoformat(), _MOMENTS, _ZONES)
    micros = st.integers(-(10**15), 7 * 10**15).map(str)
    odd = st.sampled_from(["2026-11-28T12:00:00", "2026-11-28T12:00:00Z", "2026-13-01T00:00:00+00:00", "2026-11-28 12:00:00+00:00", "2026-11-28T12:00:00.5+00:00", "yesterday"])  # fmt: skip
    return st.one_of(aware, micros, odd, _ODD)


_TEXTS = {
    "name": st.text(max_size=5),
    "small": st.one_of(
        st.integers(-(2**31), 2**31 - 1).map(str), st.sampled_from(["2147483648", "-2147483649"]), _ODD
    ),
    "count": st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(str), st.sampled_from(["9223372036854775808"]), _ODD
    ),
    "ratio": st.one_of(st.floats(width=32, allow_nan=False).map(repr), _ODD),
    "amount": st.one_of(st.floats(allow_nan=False).map(repr), _ODD),
    "flag": st.one_of(st.sampled_from(["true", "false", "1", "0", "True", "FALSE", "yes"]), _ODD),
    "at": _time_texts(),
    "__ingest_us": st.one_of(st.integers(0, 2 * 10**15).map(str), st.sampled_from(["", "soon"])),
}


@st.composite
def _entries(draw: st.DrawFn) -> list[Entry]:
    """Mostly one producer's layout (the same fields in the same order); sometimes not."""
    layout = draw(st.lists(st.sampled_from(list(_TEXTS)), min_size=1, unique=True))
    entries: list[Entry] = []
    for i in range(draw(st.integers(1, 12))):
        names = layout if draw(st.integers(0, 9)) else draw(st.permutations([*layout, "colour"]))[:4]
        fields: list[bytes] = []
        for name in names:
            text = draw(_TEXTS.get(name, st.just("red"))).encode()
            fields += [name.encode(), text if draw(st.integers(0, 30)) else b"\xff\xfe"]
        entries.append((f"{1_700_000_000_000 + i}-{i % 3}".encode(), fields))
    return entries


@settings(max_examples=300, deadline=None)
@given(entries=_entries())
def test_columns_equal_one_by_one(entries: list[Entry]) -> None:
    frame, bad = _parse_by_columns(SOURCE, entries, first_ord=40)
    expected, expected_bad = _parse_each(SOURCE, entries, 40, range(len(entries)))
    assert_frame_equal(frame, expected)
    assert bad == expected_bad


def test_a_producers_batch_is_read_by_columns() -> None:
    at = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
    fields = [
        b"name",
        "é".encode(),
        b"count",
        b"7",
        b"amount",
        b"2.5",
        b"flag",
        b"true",
        b"at",
        at.isoformat().encode(),
    ]
    batch = [(b"%d-0" % (1_700_000_000_000 + i), fields) for i in range(600)]
    frame, bad = parse_entries(SOURCE, batch, first_ord=0)
    assert not bad and frame.height == 600
    assert frame.row(0, named=True) == {
        "name": "é", "small": None, "count": 7, "ratio": None, "amount": 2.5, "flag": True, "at": at,
        "__ingest_us": 1_700_000_000_000_999, "__ord": 0, "__entry": "1700000000000-0",
    }  # fmt: skip


def test_an_ingest_time_stamped_after_the_entry_reached_redis_is_refused() -> None:
    """A producer's clock ahead of Redis's, or a stamp in nanoseconds, would put the high-water
    mark in the future and later events would pass for copies: refused, with the reason, in
    small batches (read one by one) and large (by columns). Within a second it is the clocks'."""
    arrived_us = 1_700_000_000_000_999  # entry 1700000000000-0
    stamps = {
        b"1700000000000-0": arrived_us + 900_000,  # 0.9 s ahead: accepted
        b"1700000000000-1": arrived_us + 1_100_000,  # 1.1 s ahead
        b"1700000000000-2": arrived_us * 1000,  # nanoseconds
    }
    entries = [
        (entry_id, [b"name", b"n", b"at", b"1700000000000000", b"__ingest_us", str(stamp).encode()])
        for entry_id, stamp in stamps.items()
    ]
    for copies in (1, 200):  # 3 and 600 entries
        frame, bad = parse_entries(SOURCE, entries * copies, first_ord=0)
        assert frame["__entry"].unique().to_list() == ["1700000000000-0"]
        assert sorted({str(r.entry) for r in bad}) == ["b'1700000000000-1'", "b'1700000000000-2'"]
        assert bad[0].reason == (
            f"malformed: __ingest_us {arrived_us + 1_100_000} is after the entry reached Redis (its id "
            "1700000000000-1); stamp microseconds from a clock in step with Redis's, or leave __ingest_us out"
        )
