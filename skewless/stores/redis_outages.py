"""Long-running loops over Redis (`skewless ingest`, `skewless log-worker`) outlive its outages.

A Redis restart or failover must not stop the processes that feed it, nor must a Redis that is
full (it refuses writes until memory is freed or maxmemory raised): each says in one line what
happened, tries Redis once a second, and when it answers (has room) goes on where it was. Their
work is built for that already: nothing is acknowledged before it is written, and what was
written twice counts once, so going on after an outage is what a restarted process would do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from skewless._errors import SkewlessError
from skewless.stores.redis_memory import FULL, has_room, is_full

__all__ = ["OUTAGE_ERRORS", "ride_out_outages", "unreachable"]

#: How often a process that lost Redis tries it again.
RETRY_S = 1.0
#: What redis-py raises when Redis cannot be reached (refused, closed, silent past the timeout).
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def unreachable(exc: BaseException | None) -> str:
    """Why Redis could not be reached, when that is what ``exc`` (or what caused it) says; else
    empty."""
    while exc is not None:
        if isinstance(exc, OUTAGE_ERRORS):
            return str(exc)
        exc = exc.__cause__
    return ""


def ride_out_outages(
    client: redis.Redis,
    work: Callable[[], None],
    *,
    until: Callable[[], bool],
    on_outage: Callable[[str], None],
    on_back: Callable[[], None] = lambda: None,
) -> None:
    """Call ``work()`` until ``until()`` is true. When it fails because Redis cannot be reached,
    say so through ``on_outage``, wait until Redis answers (or ``until()``), run ``on_back`` (a
    Redis that restarted empty needs its consumer groups again) and go on. When it fails because
    Redis is full, say so and wait until Redis has room."""
    while not until():
        try:
            work()
        except (redis.RedisError, SkewlessError) as exc:
            if reason := unreachable(exc):
                on_outage(f"Redis is unreachable ({reason}); trying again every second.")
                if not _wait_for(lambda: bool(client.ping()), until):
                    return
                on_back()
                on_outage("Redis is back; going on where this process was.")
            elif is_full(exc):
                on_outage(f"{FULL} Trying again every second.")
                if not _wait_for(lambda: has_room(client), until):
                    return
                on_outage("Redis has room again; going on where this process was.")
            else:
                raise


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
