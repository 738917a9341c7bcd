"""A tile or set key gets its expiry when the apply script creates it, and keeps it (``PEXPIRE
… NX`` on Redis 7, a comparison with ``PTTL`` on the embedded 6.2): the first expiry is already
the moment no window can read the key (docs/architecture.md, "Expiry, once per key"), and a
later batch must neither push it back nor leave a key it creates without one."""

from __future__ import annotations

import redis

from skewless.online.materialize import clear_view
from skewless.transforms.incremental import IncrementalExecutor
from tests import oracle
from tests.offline.test_batch_matches_oracle import MINUTE
from tests.parity.test_online_offline_parity import _frame, _kept_forever, own_plan
from tests.parity.test_online_offline_parity import client as client  # the fixture


def _event(position: int, at: int, amount: float | None) -> oracle.Event:
    values = {"amount": amount, "units": 1, "shop": "s1"}
    return oracle.Event("a", at, at, f"e{position}", values, position)


def _expiries(client: redis.Redis, view: str) -> dict[bytes, int]:
    return {k: client.pttl(k) for k in client.scan_iter(match=f"skl:{{{view}|*", count=1000)}


def test_keys_found_in_place_keep_their_expiry_and_new_ones_get_theirs(client: redis.Redis) -> None:
    plan = own_plan(ttl="90m")
    executor = IncrementalExecutor(client, project="test")
    try:
        # The first event has no amount: its tiles hold counts, not the amount's max or last.
        executor.apply([plan], _frame([_event(0, 10 * MINUTE, None)]))
        before = _expiries(client, plan.name)
        # Later: the same tiles, now with an amount (new fields in keys that exist), and new tiles.
        executor.apply(
            [plan], _frame([_event(1, 10 * MINUTE + 30_000_000, 2.0), _event(2, 16 * MINUTE, 3.0)])
        )
        after = _expiries(client, plan.name)
        assert not _kept_forever(client, plan)
        assert len(after) > len(before)  # the second batch made keys of its own
        for key, ttl in before.items():
            if b":t:" in key or b":d:" in key:  # set when made, not pushed later by the next batch
                assert 0 < after[key] <= ttl, key
    finally:
        clear_view(client, plan)
