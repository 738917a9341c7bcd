"""An entity's tag names its state in Redis: two entities must never share one, whatever their
join-key values hold (the separator, the escape character), and the tag the writers compute in
polars must equal the one the reader computes in Python."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import polars as pl
import redis
from hypothesis import example, given
from hypothesis import strategies as st

from skewless import Aggregation, Entity, EventSource, FeatureView
from skewless.online.materialize import clear_view
from skewless.stores.online_read import read_feature_view
from skewless.stores.redis_layout import entity_tag, entity_tag_expr
from skewless.transforms.compiled import compile_view
from skewless.transforms.incremental import IncrementalExecutor

TS = pl.Datetime("us", "UTC")
values = st.text(alphabet=st.sampled_from("ab|\\{}é"), max_size=5)


@given(keys=st.lists(st.tuples(values, values), min_size=1, max_size=8))
@example(keys=[("x|y", "z"), ("x", "y|z")])
@example(keys=[("a\\", "|b"), ("a\\|", "b")])
def test_composite_tags_are_distinct_and_equal_in_polars_and_python(keys: list[tuple[str, str]]) -> None:
    frame = pl.DataFrame({"a": [k[0] for k in keys], "b": [k[1] for k in keys]})
    in_polars = frame.select(entity_tag_expr("v", ["a", "b"])).to_series().to_list()
    in_python = [entity_tag("v", key) for key in keys]
    assert in_polars == in_python
    assert len(set(in_python)) == len(set(keys))  # one tag per entity, never shared


def test_composite_keys_holding_the_separator_keep_their_own_state(redis_url: str) -> None:
    """Before, ("x|y", "z") and ("x", "y|z") were both tagged ``{view|x|y|z}``: each read the
    other's events as its own (2 counted where offline says 1)."""
    first, second = Entity(name="first", join_key="first"), Entity(name="second", join_key="second")
    source = EventSource(
        name="pairs",
        path="pairs.parquet",
        event_time="t",
        event_id="id",
        schema={"id": pl.String, "first": pl.String, "second": pl.String, "t": TS},
    )
    view = FeatureView(
        name=f"pairs{uuid.uuid4().hex[:8]}",
        entities=[first, second],
        source=source,
        aggregations=[Aggregation("count", window="1h", granularity="1m")],
    )
    plan, client = compile_view(view), redis.Redis.from_url(redis_url)
    now = datetime.now(UTC)
    now_us = int(now.timestamp() * 1_000_000)
    events = pl.DataFrame(
        {"id": ["1", "2"], "first": ["x|y", "x"], "second": ["z", "y|z"], "t": [now, now],
         "__ingest_us": [now_us, now_us], "__ord": [0, 1]},
        schema_overrides={"t": TS},
    )  # fmt: skip
    try:
        IncrementalExecutor(client, project="test").apply([plan], events)
        rows = read_feature_view(client, plan, [["x|y", "z"], ["x", "y|z"], ["x", "y"]], now_us + 1)
        assert [row.values["count_1h"] for row in rows] == [1, 1, None]
    finally:
        clear_view(client, plan)
