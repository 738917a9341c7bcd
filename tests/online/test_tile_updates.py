"""A batch's float sums are added one value after the other, in arrival order: a parallel sum
rounds differently from one run to the next, and a rerun must leave every value bit-identical."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from skewless.transforms.tile_updates import counted_events, merged_updates
from tests import oracle
from tests.offline.test_batch_matches_oracle import T0
from tests.parity.test_online_offline_parity import EXAMPLES, _frame, own_plan

#: Amounts of every magnitude, so that the order of additions shows in the last bits.
amounts = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)


@settings(max_examples=EXAMPLES, deadline=None)
@given(values=st.lists(st.tuples(st.sampled_from(["a", "b"]), amounts), min_size=1, max_size=200))
def test_float_sums_are_sequential_in_arrival_order(values: list[tuple[str, float]]) -> None:
    plan = own_plan()
    mean = next(i for i, a in enumerate(plan.aggregations) if a.aggregator.function == "mean")
    events = [
        oracle.Event(
            key, 60_000_000, 60_000_000 + i, f"e{i}", {"amount": amount, "units": 1, "shop": None}, i
        )
        for i, (key, amount) in enumerate(values)
    ]
    tagged, _ = counted_events(plan, _frame(events))
    frame = tagged.with_columns(__group=pl.col("__tag"), __now=pl.lit(T0 + 120_000_000))
    updates = merged_updates(plan, frame.lazy(), frame.schema).collect()
    sums = updates.filter(pl.col("field") == f"a{mean}.s")
    assert sums.height == len({key for key, _ in values})
    for group, value in sums.select("__group", "value").iter_rows():
        expected = 0.0
        for amount in tagged.filter(pl.col("__tag") == group)["amount"]:
            expected += amount
        assert float(value) == expected
