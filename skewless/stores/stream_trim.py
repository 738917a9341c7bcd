"""Trimming a Redis Stream to what its consumer groups still need.

Event streams and the serving log are read by consumer groups that move every entry somewhere
durable (the offline history, the dead-letter stream, the serving-log parquet files) before
they acknowledge it. After that the entry is redundant, and a stream nobody trims keeps every
event ever appended in Redis's memory.
"""

from __future__ import annotations

from typing import Any, cast

import redis

__all__ = ["entry_position", "first_needed", "trim_acknowledged"]


def trim_acknowledged(client: redis.Redis, stream: str) -> None:
    """Delete the entries every consumer group of ``stream`` has acknowledged."""
    needed = first_needed(client, stream)
    if needed is not None:
        client.xtrim(stream, minid=needed, approximate=False)


def first_needed(client: redis.Redis, stream: str) -> bytes | str | None:
    """The first entry of ``stream`` a consumer group may still be given (None: no group, so
    none). A group still needs its oldest pending entry and all after it, or, with none pending,
    the last it was given and all after it (a group that has read nothing needs the whole
    stream); every entry before the earliest of these is acknowledged by all."""
    try:
        groups = cast(list[dict[str, Any]], client.xinfo_groups(stream))
    except redis.ResponseError:  # no such stream: nobody can be given anything
        return None
    needed = []
    for group in groups:
        oldest = (
            cast(dict[str, Any], client.xpending(stream, group["name"]))["min"] if group["pending"] else None
        )
        needed.append(oldest or group["last-delivered-id"])
    return min(needed, key=entry_position) if needed else None


def entry_position(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id, ``<milliseconds>-<sequence>``, as the pair it orders by."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, sequence = text.split("-")
    return int(millis), int(sequence)
