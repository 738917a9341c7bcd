"""Property: the batch executor's shortcuts for reading history decide exactly what the plain
rules decide — copies found through hashes of their identity (whatever the hashes, collisions
included), arrival order checked instead of sorted, and events handed to DuckDB in the pieces
they were read in."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from skewless import Aggregation, FeatureView
from skewless.transforms.batch import _arrow, _in_arrival_order, first_copies
from skewless.transforms.compiled import compile_view
from tests.offline.test_batch_matches_oracle import account, source

PLAN = compile_view(
    FeatureView(name="v", entities=[account], source=source, aggregations=[Aggregation("count", window="1h")])
)

events = st.lists(
    st.tuples(
        st.sampled_from(["e1", "e2", "e3", None]),  # a small pool: copies, and null ids
        st.integers(0, 3),  # event time
        st.sampled_from(["a", "b"]),  # account
        st.integers(0, 5),  # ingest time
    ),
    max_size=30,
)
Rows = list[tuple[str | None, int, str, int]]


def _frame(rows: Rows) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "__event_us": [r[1] for r in rows],
            "account": [r[2] for r in rows],
            "__ingest_us": [r[3] for r in rows],
            "__ord": list(range(len(rows))),
        },
        schema={
            "event_id": pl.String,
            "__event_us": pl.Int64,
            "account": pl.String,
            "__ingest_us": pl.Int64,
            "__ord": pl.Int64,
        },
    )


@given(events, st.sampled_from([1, 2, 3, None]))
def test_copies_through_hashes_are_the_copies(rows: Rows, buckets: int | None) -> None:
    """Copies always share a hash; with few buckets, different identities share them too."""
    frame = _frame(rows)
    identity = pl.struct("event_id", "__event_us", "account")
    hashes = identity.hash() if buckets is None else identity.hash() % buckets
    expected = frame.filter(pl.col("event_id").is_null() | identity.is_first_distinct())
    assert first_copies(PLAN, frame.with_columns(__copy_hash=hashes)).equals(expected)


@given(events)
def test_arrival_order_is_ingest_time_then_position(
    rows: Rows,
) -> None:
    frame = _frame(rows).sample(fraction=1.0, shuffle=True, seed=len(rows))
    assert _in_arrival_order(frame).equals(frame.sort("__ingest_us", "__ord"))
    in_order = frame.sort("__ingest_us", "__ord")
    assert _in_arrival_order(in_order).equals(in_order)


@given(events, st.lists(st.integers(1, 10), max_size=4))
def test_events_reach_duckdb_whole_and_in_their_pieces(rows: Rows, cuts: list[int]) -> None:
    """Events read in pieces, every column cut at the same rows (DuckDB's record batches), keep
    them; a column computed in one piece (a rank) is cut where they are, not the whole frame
    copied into one piece. Either way the values are the frame's."""
    frame = _frame(rows)
    pieces = [frame.slice(sum(cuts[:i]), n) for i, n in enumerate(cuts)] + [frame.slice(sum(cuts))]
    read = pl.from_arrow(pa.concat_tables(p.to_arrow() for p in pieces), rechunk=False)
    assert isinstance(read, pl.DataFrame)
    cut_at = {tuple(column.chunk_lengths()) for column in read.iter_columns()}  # polars may join small pieces
    ranked = read.with_columns(rank=pl.col("__ord").arg_sort().arg_sort())
    table = _arrow(ranked)
    assert pl.from_arrow(table).equals(ranked)
    if len(cut_at) == 1 and rows:
        assert all(column.num_chunks == len(next(iter(cut_at))) for column in table.columns)
