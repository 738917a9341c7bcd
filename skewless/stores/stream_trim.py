"""Trimming a Redis Stream to what its consumer groups still need.

Event streams and the serving log are read by consumer groups that move every entry somewhere
durable (the offline history, the dead-letter stream, the serving-log parquet files) before
they acknowledge it. After that the entry is redundant, and a stream nobody trims keeps every
event ever appended in Redis's memory.
"""

from __future__ import annotations

import redis

__all__ = ["entry_position", "trim_acknowledged"]


def trim_acknowledged(client: redis.Redis, stream: str) -> None:
    """Delete the entries every consumer group of ``stream`` has acknowledged. A group still
    needs its oldest pending entry and all after it, or, with none pending, the entries after
    the last it was given (a group that has read nothing keeps the whole stream)."""
    needed = []
    for group in client.xinfo_groups(stream):
        oldest = client.xpending(stream, group["name"])["min"] if group["pending"] else None
        needed.append(oldest or group["last-delivered-id"])
    if needed:
        client.xtrim(stream, minid=min(needed, key=entry_position), approximate=False)


def entry_position(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id, ``<milliseconds>-<sequence>``, as the pair it orders by."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, sequence = text.split("-")
    return int(millis), int(sequence)
