"""Parity, the heart: random event streams replayed through the incremental executor into real
Redis, read at random times, equal the batch executor ("as available") at the same times — every
aggregation and status — and a second replay of the whole stream changes nothing."""

from __future__ import annotations

import dataclasses
import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skewless import FeatureView, PlainView
from skewless.online.materialize import clear_view
from skewless.online.plain import plain_view_read
from skewless.stores.online_read import (
    NOT_FOUND,
    NULL_VALUE,
    OUTSIDE_MAX_AGE,
    PRESENT,
    execute_reads,
    read_feature_view,
)
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import ViewPlan, compile_view
from skewless.transforms.incremental import IncrementalExecutor
from tests import oracle
from tests.offline.test_batch_matches_oracle import (
    AGGREGATIONS,
    MINUTE,
    NULL_IDS_AND_A_COPY,
    PAST_INT64_AND_BACK,
    T0,
    _rows,
    _write,
    account,
    derive,
    event_sets,
    source,
)
from tests.online.keys import kept_forever

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


def _batches(events: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    return [events.slice(start, size) for start in range(0, events.height, size)]


def _arrived_by(
    arrival: pl.DataFrame, checkpoints: list[int], size: int
) -> Iterator[tuple[int, list[pl.DataFrame]]]:
    """Each checkpoint ``t``, in order, with the batches of the events that arrived since the one
    before, up to ``t``."""
    applied_until = -1
    for t in sorted(set(checkpoints)):
        due = arrival.filter((pl.col("__ingest_us") > T0 + applied_until) & (pl.col("__ingest_us") <= T0 + t))
        yield t, _batches(due, size)
        applied_until = t


def _same(online: Any, offline: Any) -> bool:
    if online is None or offline is None:
        return online is None and offline is None
    if isinstance(offline, float) and math.isnan(offline):  # a plain view serves its row's NaN
        return isinstance(online, float) and math.isnan(online)
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
@example(events=PAST_INT64_AND_BACK, checkpoints=[11 * MINUTE, 13 * MINUTE], batch=1)
def test_online_equals_offline_as_available(
    client: redis.Redis, tmp_path: Path, events: list[oracle.Event], checkpoints: list[int], batch: int
) -> None:
    if not events:
        return
    plan = own_plan(ttl="90m")
    _write(events, tmp_path / "payments.parquet")
    offline = BatchExecutor(tmp_path)
    online = IncrementalExecutor(client, project="test")
    arrival = _frame(sorted(events, key=lambda e: (e.ingest_us, e.position)))
    keys = ["a", "b", "c", "unknown"]
    try:
        for t, due in _arrived_by(arrival, checkpoints, batch):
            for part in due:
                online.apply([plan], part)
            _compare(client, offline, plan, keys, t)
        last = max(checkpoints)
        before = read_feature_view(client, plan, [[k] for k in keys], T0 + last)
        for part in _batches(arrival.filter(pl.col("__ingest_us") <= T0 + last), batch):
            online.apply([plan], part)  # the whole stream again: nothing may change
        assert read_feature_view(client, plan, [[k] for k in keys], T0 + last) == before
        assert not kept_forever(client, plan.name)  # each key expires once no read can need it
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


#: The test source with a stream: its plain view's rows race (ingest, materializations) and
#: are written by compare-and-set with marks (online/plain.py, WRITE_SCRIPT).
streamed = dataclasses.replace(source, stream="payments")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=event_sets(),
    checkpoints=st.lists(st.integers(0, 300 * MINUTE), min_size=1, max_size=4),
    batch=st.integers(1, 7),
)
@example(  # a late copy of the first of two events at one time, its id holding the mark's separator
    events=[
        oracle.Event("a", 10 * MINUTE, 10 * MINUTE, "x\x1fy", {"amount": 1.0, "units": 1, "shop": "s1"}, 0),
        oracle.Event("a", 10 * MINUTE, 11 * MINUTE, "z", {"amount": 2.0, "units": 2, "shop": "s2"}, 1),
        oracle.Event("a", 10 * MINUTE, 12 * MINUTE, "x\x1fy", {"amount": 3.0, "units": 3, "shop": "s3"}, 2),
    ],
    checkpoints=[13 * MINUTE],
    batch=1,
)
def test_a_streamed_plain_view_equals_offline_as_available(
    client: redis.Redis, tmp_path: Path, events: list[oracle.Event], checkpoints: list[int], batch: int
) -> None:
    """Each key's latest row (ties: the later arrival; copies never count), and writing every
    batch twice, or the whole stream again, changes nothing."""
    if not events:
        return
    view = PlainView(
        name="plain", entities=[account], source=streamed, features=["amount", "units", "shop"], ttl="90m"
    )
    plan, project = compile_view(view), f"p{uuid.uuid4().hex[:10]}"
    _write(events, tmp_path / "payments.parquet")
    offline = BatchExecutor(tmp_path)
    online = IncrementalExecutor(client, project=project)
    arrival = _frame(sorted(events, key=lambda e: (e.ingest_us, e.position)))
    keys = ["a", "b", "c", "unknown"]

    def read(t: int) -> Any:
        return execute_reads(client, [plain_view_read(plan, project, [[k] for k in keys], T0 + t)])[0]

    try:
        for t, due in _arrived_by(arrival, checkpoints, batch):
            for part in due:
                online.apply([plan], part)
                online.apply([plan], part)  # redelivered
            expected, actual = (
                offline.compute(plan, _rows([(k, t) for k in keys]), as_available=True),
                read(t),
            )
            for feature in plan.features:
                for i, key in enumerate(keys):
                    value, status, truth = (
                        actual.values[feature][i],
                        actual.statuses[feature][i],
                        expected[feature][i],
                    )
                    assert _same(value, truth), (feature, key, t, value, truth)
                    assert (status == PRESENT) == (truth is not None), (feature, key, status)
        last, before = max(checkpoints), read(max(checkpoints))
        for part in _batches(arrival.filter(pl.col("__ingest_us") <= T0 + last), batch):
            online.apply([plan], part)  # the whole stream again: nothing may change
        assert repr(read(last)) == repr(before)  # repr: a served NaN equals itself
    finally:
        offline.close()
        for key in client.scan_iter(match=f"*{project}"):
            client.delete(key)
