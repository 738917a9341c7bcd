"""Which `skewless ingest` processes are alive, per stream.

A full materialization of a windowed view clears its online state and writes it again from the
history; an `ingest` writing the same keys meanwhile would lose its writes (docs/architecture.md,
"Materialization and ingest"), so the run must know whether one is writing. Redis's consumer list
cannot tell: before Redis 7.2 a consumer's idle time counts from the last entry it was given, so
a live consumer of a quiet stream looks like a dead one. Each ingest therefore marks itself in
``<stream>:consumers``, a sorted set scored by Redis's clock (one clock for every host), every
second while it runs, and removes itself when it stops; a mark older than ``ALIVE_MS`` is a
process that died.

A consumer group itself never forgets a consumer: Redis keeps every name that ever read, and
each `ingest` (and `log-worker`) process reads under a name of its own (host and pid), so without
care the group would list every process ever started. A consumer leaves the group when it stops,
and a live one removes the consumers that have been idle for a while and hold no pending entry
(``forget``, ``forget_idle``): what a dead consumer left pending is claimed by a live one first,
and is never dropped.
"""

from __future__ import annotations

from collections.abc import Collection

import redis

__all__ = ["ALIVE_MS", "alive", "forget", "forget_idle", "mark_alive", "mark_gone"]

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
    return [_text(m) for m in members]  # type: ignore[union-attr]


#: Removes a consumer from its group if it holds no pending entry: checked and removed at once,
#: so no entry delivered in between is dropped with it. KEYS[1] = stream; ARGV = group, consumer.
_FORGET_SCRIPT = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) + 1
"""


def forget(client: redis.Redis, stream: str, group: str, consumer: str) -> bool:
    """Remove ``consumer`` from ``group`` unless it holds pending entries; True if removed (or
    never there). A live consumer that is removed comes back with its next read."""
    return bool(client.eval(_FORGET_SCRIPT, 1, stream, group, consumer))


def forget_idle(
    client: redis.Redis, stream: str, group: str, *, idle_ms: int, keep: Collection[str] = ()
) -> int:
    """Remove the consumers of ``group`` other than ``keep`` that hold no pending entry and have
    been idle ``idle_ms`` (Redis's ``idle``: before 7.2, since it was last given an entry); how
    many were removed. Safe for a consumer still alive: removed so, it comes back with its next
    read."""
    consumers = client.xinfo_consumers(stream, group)
    idle = [
        _text(c["name"])
        for c in consumers  # type: ignore[union-attr]
        if int(c["pending"]) == 0 and int(c["idle"]) >= idle_ms
    ]
    return sum(forget(client, stream, group, name) for name in idle if name not in keep)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
