"""Many write commands in few round trips, for materialization.

redis-py's pipeline packs each command in Python and parses each reply through several layers;
for a hundred thousand HSETs that cost more than Redis took to run them. Here each batch is
packed by hiredis (in C) into one buffer, sent at once, and its replies read back in order on
one connection. An error reply raises after the batch is read: nothing is left half-read on a
connection that goes back to the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis

__all__ = ["run_bulk"]


def run_bulk(
    client: redis.Redis,
    commands: Sequence[tuple[Any, ...]],
    *,
    batch: int = 5_000,
    on_batch: Callable[[int], None] = lambda done: None,
) -> int:
    """Run ``commands`` in order, ``batch`` per round trip; returns how many ran.

    ``on_batch(done)`` follows every batch. Raises ``redis.RedisError`` for a lost connection or
    the first error reply (the batches before it were applied)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        for start in range(0, len(commands), batch):
            chunk = commands[start : start + batch]
            packed = b"".join([hiredis.pack_command(c) for c in chunk])
            connection.send_packed_command([packed])  # type: ignore[no-untyped-call]
            errors = []
            for _ in chunk:
                try:
                    connection.read_response()  # type: ignore[no-untyped-call]
                except redis.ResponseError as exc:  # its reply was read: the next ones follow in order
                    errors.append(exc)
            if errors:
                raise errors[0]
            on_batch(start + len(chunk))
    except BaseException:
        connection.disconnect()  # type: ignore[no-untyped-call]  # no replies left in flight
        raise
    finally:
        pool.release(connection)
    return len(commands)
