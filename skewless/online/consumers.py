"""Which `skewless ingest` processes are alive, per stream.

A full materialization of a windowed view clears its online state and writes it again from the
history; an `ingest` writing the same keys meanwhile would lose its writes (docs/architecture.md,
"Materialization and ingest"), so the run must know whether one is writing. Redis's consumer list
cannot tell: before Redis 7.2 a consumer's idle time counts from the last entry it was given, so
a live consumer of a quiet stream looks like a dead one. Each ingest therefore marks itself in
``<stream>:consumers``, a sorted set scored by Redis's clock (one clock for every host), every
second while it runs, and removes itself when it stops; a mark older than ``ALIVE_MS`` is a
process that died.
"""

from __future__ import annotations

import redis

__all__ = ["ALIVE_MS", "alive", "mark_alive", "mark_gone"]

#: A consumer whose mark is older than this is taken for dead (it marks itself every second).
ALIVE_MS = 5_000


def _key(stream: str) -> str:
    return f"{stream}:consumers"


def _now_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()  # type: ignore[misc]
    return int(seconds) * 1000 + int(micros) // 1000


def mark_alive(client: redis.Redis, stream: str, consumer: str) -> None:
    """Mark ``consumer`` as consuming ``stream`` now; forget marks long dead."""
    now = _now_ms(client)
    pipe = client.pipeline(transaction=False)
    pipe.zadd(_key(stream), {consumer: now})
    pipe.zremrangebyscore(_key(stream), "-inf", now - 10 * ALIVE_MS)
    pipe.pexpire(_key(stream), 10 * ALIVE_MS)
    pipe.execute()


def mark_gone(client: redis.Redis, stream: str, consumer: str) -> None:
    """``consumer`` stopped consuming ``stream``."""
    client.zrem(_key(stream), consumer)


def alive(client: redis.Redis, stream: str) -> list[str]:
    """The consumers of ``stream`` that marked themselves within ``ALIVE_MS``."""
    members = client.zrangebyscore(_key(stream), _now_ms(client) - ALIVE_MS, "+inf")
    return [m.decode() if isinstance(m, bytes) else m for m in members]  # type: ignore[union-attr]
