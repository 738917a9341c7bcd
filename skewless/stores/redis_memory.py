"""What Redis does when it is full, and what that means for skewless's online state.

With ``maxmemory`` set, a full Redis either refuses writes (``maxmemory-policy noeviction``) or
evicts keys to make room. Refused writes lose nothing: ``ingest`` and ``log-worker`` wait for
room (stores/redis_outages.py) with their batch unacknowledged. Evictions do lose: an evicted
tile serves a window without its events, and an evicted id set lets a redelivered event count
twice. So skewless warns when Redis may evict.
"""

from __future__ import annotations

from typing import Any, cast

import redis

__all__ = ["FULL", "eviction_warning", "has_room"]

#: What to tell a user when Redis is full.
FULL = "Redis is full (used memory above its maxmemory) and refuses writes; raise maxmemory or free memory."


def has_room(client: redis.Redis) -> bool:
    """True when Redis uses less memory than its ``maxmemory`` (or has none)."""
    memory = cast(dict[str, Any], client.info("memory"))
    limit = int(memory.get("maxmemory", 0))
    return limit == 0 or int(memory.get("used_memory", 0)) < limit


def eviction_warning(client: redis.Redis) -> str:
    """A one-line warning when Redis may evict skewless's keys once full; else empty. Empty too
    when Redis does not say (``INFO`` disabled, as some managed services do, or Redis away: the
    command that asked reports that itself)."""
    try:
        memory = cast(dict[str, Any], client.info("memory"))
    except redis.RedisError:
        return ""
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if int(memory.get("maxmemory", 0)) == 0 or policy == "noeviction":
        return ""
    return (
        f"warning: Redis evicts keys when full (maxmemory-policy {policy}), and an evicted key of "
        "skewless's serves wrong features or counts an event twice; set maxmemory-policy "
        "noeviction, or give skewless a Redis of its own."
    )
