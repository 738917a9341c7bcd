"""Every key the apply script writes expires (docs/architecture.md, "Expiry, once per key"), on
Redis 7 (``PEXPIRE … NX``/``GT``) and on the embedded 6.2 (compared with ``PTTL``): a tile or
set key keeps the expiry it was created with, and the seen set lives until its last deadline
whatever the batch trims from it."""

from __future__ import annotations

import redis

from skewless.online.materialize import clear_view
from skewless.transforms.incremental import IncrementalExecutor
from tests import oracle
from tests.offline.test_batch_matches_oracle import MINUTE, T0
from tests.online.keys import expiries, kept_forever
from tests.parity.test_online_offline_parity import _frame, own_plan
from tests.parity.test_online_offline_parity import client as client  # the fixture


def _event(position: int, at: int, amount: float | None) -> oracle.Event:
    values = {"amount": amount, "units": 1, "shop": "s1"}
    return oracle.Event("a", at, at, f"e{position}", values, position)


def test_keys_found_in_place_keep_their_expiry_and_new_ones_get_theirs(client: redis.Redis) -> None:
    plan = own_plan(ttl="90m")
    executor = IncrementalExecutor(client, project="test")
    try:
        # The first event has no amount: its tiles hold counts, not the amount's max or last.
        executor.apply([plan], _frame([_event(0, 10 * MINUTE, None)]))
        before = expiries(client, plan.name)
        # Later: the same tiles, now with an amount (new fields in keys that exist), and new tiles.
        executor.apply(
            [plan], _frame([_event(1, 10 * MINUTE + 30_000_000, 2.0), _event(2, 16 * MINUTE, 3.0)])
        )
        after = expiries(client, plan.name)
        assert not kept_forever(client, plan.name)
        assert len(after) > len(before)  # the second batch made keys of its own
        for key, ttl in before.items():
            if b":t:" in key or b":d:" in key:  # set when made, not pushed later by the next batch
                assert 0 < after[key] <= ttl, key
    finally:
        clear_view(client, plan)


def test_the_seen_set_keeps_an_expiry_when_a_batch_trims_every_id(client: redis.Redis) -> None:
    """A batch whose high-water mark passed every recorded id's deadline trims them all (a
    consumer behind the stream meets such a set before it expires). Trimmed before the new mark
    was written, the emptied set was deleted, came back without an expiry, and ``GT`` never gave
    it one: a set kept forever per entity."""
    plan = own_plan(ttl="90m")
    executor = IncrementalExecutor(client, project="test")
    try:
        executor.apply([plan], _frame([_event(0, 10 * MINUTE, 1.0)]))
        executor.apply([plan], _frame([_event(1, 10 * MINUTE + plan.lateness_us + MINUTE, 2.0)]))
        seen = f"skl:{{{plan.name}|a}}:seen"
        assert client.zscore(seen, "e0@" + str(T0 + 10 * MINUTE)) is None  # trimmed
        assert client.pttl(seen) > 0
    finally:
        clear_view(client, plan)
