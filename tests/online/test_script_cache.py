"""The incremental executor sends its scripts by hash. A Redis that never saw them, or that lost
its script cache, still applies every event exactly once: the script is loaded and the calls
that met its absence run again. Against a redis-server of the test's own."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from skewless import PlainView
from skewless.online.plain import plain_view_read
from skewless.stores.online_read import execute_reads, read_feature_view
from skewless.transforms.compiled import compile_view
from skewless.transforms.incremental import IncrementalExecutor
from tests import oracle
from tests.offline.test_batch_matches_oracle import T0, account
from tests.parity.test_online_offline_parity import _frame, own_plan, streamed
from tests.service.processes import free_port, redis_server


def _events(first: int) -> list[oracle.Event]:
    return [
        oracle.Event(
            event_id=f"e{first + i}",
            key="a",
            event_us=(first + i) * 1_000_000,
            ingest_us=(first + i) * 1_000_000,
            values={"amount": 2.5, "units": 1, "shop": "s1"},
            position=first + i,
        )
        for i in range(3)
    ]


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    port = free_port()
    server = redis_server(port, tmp_path)
    yield redis.Redis(port=port)
    server.terminate()
    server.wait(10)


def test_scripts_missing_from_redis_are_loaded_and_nothing_is_lost(fresh_redis: redis.Redis) -> None:
    plan = own_plan()
    executor = IncrementalExecutor(fresh_redis, project="test")
    assert executor.apply([plan], _frame(_events(0))).applied == {plan.name: 3}  # never loaded
    fresh_redis.script_flush()
    assert executor.apply([plan], _frame(_events(3))).applied == {plan.name: 3}  # cache lost
    values = read_feature_view(fresh_redis, plan, [["a"]], T0 + 10_000_000)[0].values
    assert values[plan.aggregations[0].name] == 6  # the 10-minute count: every event, once


def test_a_streamed_plain_view_writes_without_its_script_cached(fresh_redis: redis.Redis) -> None:
    plan = compile_view(PlainView(name="plain", entities=[account], source=streamed, features=["units"]))
    executor = IncrementalExecutor(fresh_redis, project="test")
    events = [
        dataclasses.replace(e, values={**e.values, "units": e.position}) for e in _events(0) + _events(3)
    ]
    assert executor.apply([plan], _frame(events[:3])).applied == {plan.name: 1}  # never loaded
    fresh_redis.script_flush()
    assert executor.apply([plan], _frame(events[3:])).applied == {plan.name: 1}  # cache lost
    read = execute_reads(fresh_redis, [plain_view_read(plan, "test", [["a"]], T0 + 10_000_000)])[0]
    assert read.values["units"] == [5]  # the latest event's row
