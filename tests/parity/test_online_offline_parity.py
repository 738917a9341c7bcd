"""Parity, the heart: random event streams replayed through the incremental executor into real
Redis, read at random times, equal the batch executor ("as available") at the same times — every
aggregation and status — and a second replay of the whole stream changes nothing."""

from __future__ import annotations

import math
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skewless import FeatureView
from skewless.online.materialize import clear_view
from skewless.stores.online_read import NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE, PRESENT, read_feature_view
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import ViewPlan, compile_view
from skewless.transforms.incremental import IncrementalExecutor
from tests import oracle
from tests.offline.test_batch_matches_oracle import (
    AGGREGATIONS,
    MINUTE,
    NULL_IDS_AND_A_COPY,
    T0,
    _rows,
    _write,
    account,
    derive,
    event_sets,
    source,
)

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", 40))


def _frame(events: list[oracle.Event]) -> pl.DataFrame:
    """Events as a stream delivers them: source columns plus ingest time and arrival position."""
    return pl.DataFrame(
        {
            "event_id": [e.event_id for e in events],
            "account": [e.key for e in events],
            "amount": [e.values["amount"] for e in events],
            "units": [e.values["units"] for e in events],
            "shop": [e.values["shop"] for e in events],
            "event_time": [
                None if e.event_us is None else datetime.fromtimestamp((T0 + e.event_us) / 1e6, UTC)
                for e in events
            ],
            "ingest_time": [datetime.fromtimestamp((T0 + e.ingest_us) / 1e6, UTC) for e in events],
            "__ingest_us": [T0 + e.ingest_us for e in events],
            "__ord": [e.position for e in events],
        },
        schema={**source.columns, "__ingest_us": pl.Int64, "__ord": pl.Int64},
    )


def _same(online: Any, offline: Any) -> bool:
    if online is None or offline is None:
        return online is None and offline is None
    if isinstance(offline, float):
        return math.isclose(online, offline, rel_tol=1e-9, abs_tol=1e-9)
    return bool(online == offline)


@pytest.fixture(params=["redis_url", "embedded_redis_url"])
def client(request: pytest.FixtureRequest) -> redis.Redis:
    """This machine's Redis (7: the script sets expiries with NX and GT), then the embedded
    redis-server (6.2: it compares with PTTL instead)."""
    return redis.Redis.from_url(str(request.getfixturevalue(request.param)))


def own_plan(ttl: str | None = None) -> ViewPlan:
    """The test view (tests/offline/test_batch_matches_oracle.py) under a name of its own, so
    tests running side by side on one Redis never share keys."""
    view = FeatureView(
        name=f"v{uuid.uuid4().hex[:10]}",
        entities=[account],
        source=source,
        transform=derive,
        aggregations=AGGREGATIONS,
        ttl=ttl,
    )
    return compile_view(view)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=event_sets(),
    checkpoints=st.lists(st.integers(0, 300 * MINUTE), min_size=1, max_size=4),
    batch=st.integers(1, 7),
)
@example(events=NULL_IDS_AND_A_COPY, checkpoints=[11 * MINUTE, 20 * MINUTE], batch=1)
def test_online_equals_offline_as_available(
    client: redis.Redis, tmp_path: Path, events: list[oracle.Event], checkpoints: list[int], batch: int
) -> None:
    if not events:
        return
    plan = own_plan(ttl="90m")
    _write(events, tmp_path / "payments.parquet")
    offline = BatchExecutor(tmp_path)
    online = IncrementalExecutor(client)
    arrival = _frame(sorted(events, key=lambda e: (e.ingest_us, e.position)))
    keys = ["a", "b", "c", "unknown"]
    try:
        applied_until = -1
        for t in sorted(set(checkpoints)):
            due = arrival.filter(
                (pl.col("__ingest_us") > T0 + applied_until) & (pl.col("__ingest_us") <= T0 + t)
            )
            for start in range(0, due.height, batch):
                online.apply([plan], due.slice(start, batch))
            applied_until = t
            _compare(client, offline, plan, keys, t)
        last = max(checkpoints)
        before = read_feature_view(client, plan, [[k] for k in keys], T0 + last)
        done = arrival.filter(pl.col("__ingest_us") <= T0 + last)
        for start in range(0, done.height, batch):  # the whole stream again: nothing may change
            online.apply([plan], done.slice(start, batch))
        assert read_feature_view(client, plan, [[k] for k in keys], T0 + last) == before
    finally:
        offline.close()
        clear_view(client, plan)


def _compare(client: redis.Redis, offline: BatchExecutor, plan: Any, keys: list[str], t: int) -> None:
    rows = _rows([(k, t) for k in keys])
    expected = offline.compute(plan, rows, as_available=True)
    actual = read_feature_view(client, plan, [[k] for k in keys], T0 + t)
    for i, key in enumerate(keys):
        for agg in plan.aggregations:
            value, status = actual[i].values[agg.name], actual[i].statuses[agg.name]
            truth = expected[agg.name][i]
            assert _same(value, truth), (agg.name, key, t, value, truth)
            if truth is not None:
                assert status == PRESENT, (agg.name, key, status)
            else:
                assert status in (NOT_FOUND, OUTSIDE_MAX_AGE, NULL_VALUE), (agg.name, key, status)
