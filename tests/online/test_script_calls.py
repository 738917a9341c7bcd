"""The executor's script calls are built column-wise in the Redis protocol: each command must parse
back into APPLY_SCRIPT's signature, whatever its text (multi-byte ids, keys and values, whose
byte length is not their length in characters), and apply against real Redis."""

from __future__ import annotations

import hiredis
import polars as pl
import redis

from skewless.online.materialize import clear_view
from skewless.stores.online_read import read_feature_view
from skewless.transforms.incremental import IncrementalExecutor
from skewless.transforms.script_calls import script_calls
from skewless.transforms.tile_updates import counted_events
from tests import oracle
from tests.offline.test_batch_matches_oracle import T0
from tests.parity.test_online_offline_parity import _frame, own_plan

KEYS = ["ä€", "b", "🛒 x"]


def _events() -> list[oracle.Event]:
    return [
        oracle.Event(
            event_id=f"é{i % 7}🙂",  # seven events, each with copies
            key=KEYS[i % 7 % 3],
            event_us=(i % 7) * 20_000_000,
            ingest_us=200_000_000 + i,
            values={"amount": 1.5 * i, "units": i, "shop": ["s€", "日本", None][i % 3]},
            position=i,
        )
        for i in range(20)
    ]


def _parsed(packed: list[bytes]) -> list[list[bytes]]:
    """Each packed command read back as the array of arguments Redis sees; none may be cut."""
    commands = []
    for command in packed:
        reader = hiredis.Reader()
        reader.feed(command)
        commands.append(reader.gets())
        assert reader.gets() is False  # nothing left over: every length was the byte length
    return commands


def test_each_call_parses_into_the_scripts_signature() -> None:
    plan = own_plan()
    tagged, _ = counted_events(plan, _frame(_events()))
    calls = script_calls(plan, tagged.with_columns(__group=pl.col("__tag")))
    assert sorted(calls.groups) == sorted(tagged["__tag"].unique().to_list())
    for group, events, args in zip(
        calls.groups, calls.events, _parsed(calls.packed.to_pylist()), strict=True
    ):
        assert args[0] == b"EVALSHA"
        n_keys = int(args[2])
        keys, argv = args[3 : 3 + n_keys], args[3 + n_keys :]
        assert keys[:2] == [f"skl:{group}:{k}".encode() for k in ("seen", "latest")]
        ids = tagged.filter(pl.col("__tag") == group)
        assert int(argv[2]) == events == ids.height
        expected_ids = [
            f"{i}@{us}".encode() for i, us in zip(ids["event_id"], ids["__event_us"], strict=True)
        ]
        assert argv[3 : 3 + 2 * events : 2] == expected_ids
        rest = argv[3 + 2 * events :]
        n_ops = int(rest[2])
        n_expiries = int(rest[3 + 4 * n_ops])
        assert n_expiries == n_keys - 2  # every tile and set key gets its expiry
        assert len(rest) == 3 + 4 * n_ops + 1 + 2 * n_expiries


def test_calls_with_multibyte_text_apply_once(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    plan = own_plan()
    executor = IncrementalExecutor(client, project="test")
    try:
        first = executor.apply([plan], _frame(_events()))
        again = executor.apply([plan], _frame(_events()))
        assert first.applied == {plan.name: 7}
        assert again.applied == {plan.name: 0}
        reads = read_feature_view(client, plan, [[k] for k in KEYS], T0 + 130_000_000)
        counts = [read.values[plan.aggregations[0].name] for read in reads]
        assert sum(counts) == 7  # the 10-minute count sees every counted event once
    finally:
        clear_view(client, plan)
