"""The bulk history writer (full materialization of windowed views) leaves in real Redis exactly
the state a replay through the incremental executor leaves: every tile, set, seen id and
high-water mark, with its expiry — on random event sets with duplicates, late and out-of-order
events, nulls."""

from __future__ import annotations

import redis
from hypothesis import HealthCheck, given, settings

from skewless.online.history import write_history
from skewless.online.materialize import clear_view
from skewless.transforms.incremental import IncrementalExecutor
from tests import oracle
from tests.offline.test_batch_matches_oracle import event_sets
from tests.parity.test_online_offline_parity import EXAMPLES, _frame, own_plan
from tests.parity.test_online_offline_parity import client as client  # the fixture


def _number_or_text(raw: bytes) -> object:
    """A float sum is HINCRBYFLOAT's 17 digits on one path, the shortest form on the other."""
    try:
        return float(raw)
    except ValueError:
        return raw


def _content(client: redis.Redis, key: bytes, kind: str) -> object:
    if kind == "hash":
        return {f: _number_or_text(v) for f, v in client.hgetall(key).items()}
    if kind == "set":
        return client.smembers(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    return client.get(key)


def _state(client: redis.Redis, view: str) -> dict[str, tuple[str, object, int]]:
    """Every key of ``view`` but ``latest`` (set by the caller of either path), named without
    the view: its type, content and expiry (ms; -1 for none)."""
    state = {}
    for key in client.scan_iter(match=f"skl:{{{view}|*", count=1000):
        if key.endswith(b":latest"):
            continue
        kind = client.type(key).decode()
        ttl = client.pttl(key)
        name = key.decode().replace(view, "VIEW", 1)
        state[name] = (kind, _content(client, key, kind), max(ttl, -1))
    return state


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_sets())
def test_bulk_history_equals_replay(client: redis.Redis, events: list[oracle.Event]) -> None:
    replayed, bulk = own_plan(ttl="90m"), own_plan(ttl="90m")
    # Each entity's events together, in arrival order, as a full materialization hands them over.
    history = _frame(events).sort("account", "__ingest_us", "__ord", nulls_last=True)
    try:
        result = IncrementalExecutor(client, project="test").apply([replayed], history)
        written = write_history(client, bulk, history)
        ours, theirs = _state(client, bulk.name), _state(client, replayed.name)
        assert {k: v[:2] for k, v in ours.items()} == {k: v[:2] for k, v in theirs.items()}
        for key, (_, _, ttl) in ours.items():  # written a moment apart: the same expiry, give or take
            assert ttl != -1 and abs(ttl - theirs[key][2]) < 2_000, key  # and every key expires
        assert written == result.applied[replayed.name]
    finally:
        clear_view(client, replayed)
        clear_view(client, bulk)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_sets())
def test_a_user_who_may_not_restore_leaves_the_same_state(
    redis_url: str, no_restore_url: str, events: list[oracle.Event]
) -> None:
    """Each tile's RESTORE is refused, and written by HSET and PEXPIRE instead."""
    client = redis.Redis.from_url(no_restore_url)
    restored, refused = own_plan(ttl="90m"), own_plan(ttl="90m")
    history = _frame(events).sort("account", "__ingest_us", "__ord", nulls_last=True)
    try:
        write_history(redis.Redis.from_url(redis_url), restored, history)
        write_history(client, refused, history)
        ours, theirs = _state(client, refused.name), _state(client, restored.name)
        assert {k: v[:2] for k, v in ours.items()} == {k: v[:2] for k, v in theirs.items()}
        assert all(ttl != -1 for _, _, ttl in ours.values())
    finally:
        clear_view(client, restored)
        clear_view(client, refused)


def test_an_empty_history_writes_nothing(client: redis.Redis) -> None:
    plan = own_plan()
    assert write_history(client, plan, _frame([])) == 0
    assert not list(client.scan_iter(match=f"skl:{{{plan.name}|*"))
