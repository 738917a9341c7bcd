"""Long-running loops over Redis (`skewless ingest`, `skewless log-worker`) outlive its outages.

Three things stop Redis from taking writes for a while: it cannot be reached (a restart, a
partition), it is full (``maxmemory`` with ``noeviction``, until memory is freed or the limit
raised), or the address answers as a read-only replica (its server was demoted in a failover).
None of them must stop the processes that feed Redis: each says in one line what happened, asks
Redis once a second whether it is over, and goes on where it was. Their work is built for that
already: nothing is acknowledged before it is written, and what was written twice counts once,
so going on after an outage is what a restarted process would do. A command that meets one
says what to do in one line (``stall``, cli/main.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from skewless._errors import SkewlessError
from skewless.stores.redis_memory import FULL, has_room

__all__ = ["OUTAGE_ERRORS", "Stall", "ride_out_outages", "stall"]

#: How often a process that lost Redis tries it again.
RETRY_S = 1.0
#: What redis-py raises when Redis cannot be reached (refused, closed, silent past the timeout).
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError)
#: What Redis answers a write when it is full; from inside a script, within another error's text.
_FULL_REPLY = "OOM command not allowed"
#: What a replica answers a write (the same, inside a script).
_READ_ONLY_REPLY = "You can't write against a read only replica"


@dataclass(frozen=True)
class Stall:
    """Why Redis takes no writes for now (``reason``: what happened and what to do), how to
    tell that it is over, and what to say then."""

    reason: str
    over: Callable[[redis.Redis], bool]
    back: str


def stall(exc: BaseException | None) -> Stall | None:
    """The stall ``exc``, or what caused it, says Redis is in; None for any other error."""
    for cause in _causes(exc):
        if isinstance(cause, OUTAGE_ERRORS):
            return Stall(f"Redis is unreachable ({cause}).", _answers, "Redis is back")
        if isinstance(cause, redis.OutOfMemoryError) or _FULL_REPLY in str(cause):
            return Stall(FULL, has_room, "Redis has room again")
        if isinstance(cause, redis.ReadOnlyError) or _READ_ONLY_REPLY in str(cause):
            return Stall(
                "Redis answers as a read-only replica (its server was demoted, a failover?); "
                "point REDIS_URL at the primary.",
                _writable,
                "Redis takes writes again",
            )
    return None


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__


def _answers(client: redis.Redis) -> bool:
    return bool(client.ping())


def _writable(client: redis.Redis) -> bool:
    """Whether the address now reaches a primary: connections are opened afresh, since a
    failover may have moved the name to another server."""
    client.connection_pool.disconnect()
    return cast(dict[str, Any], client.info("replication")).get("role") == "master"


def ride_out_outages(
    client: redis.Redis,
    work: Callable[[], None],
    *,
    until: Callable[[], bool],
    on_outage: Callable[[str], None],
    on_back: Callable[[], None] = lambda: None,
) -> None:
    """Call ``work()`` until ``until()`` is true. When it fails because Redis is in a stall,
    say so through ``on_outage``, ask once a second whether it is over (or ``until()``), run
    ``on_back`` (a Redis that restarted empty needs its consumer groups again) and go on."""
    restarted = False  # on_back is still to run (inside the try: Redis may stall again)
    while not until():
        try:
            if restarted:
                on_back()
                restarted = False
            work()
        except (redis.RedisError, SkewlessError) as exc:
            found = stall(exc)
            if found is None:
                raise
            on_outage(f"{found.reason} Trying again every second.")
            if not _wait_for(functools.partial(found.over, client), until):
                return
            on_outage(f"{found.back}; going on where this process was.")
            restarted = True


def _wait_for(ready: Callable[[], bool], until: Callable[[], bool]) -> bool:
    """Wait until ``ready()``, asked once a second, is true (True) or ``until()`` (False)."""
    while not until():
        time.sleep(RETRY_S)
        try:
            if ready():
                return True
        except OUTAGE_ERRORS:
            continue
    return False
