"""Bulk writes against the real Redis: order kept, progress reported, an error reply raised after
its batch is read, and the connection left clean for the next caller."""

from __future__ import annotations

import pytest
import redis

from skewless.stores.bulk import run_bulk


def test_commands_run_in_order_with_progress(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url)
    done: list[int] = []
    commands = [("RPUSH", "order", i) for i in range(12_345)]
    assert run_bulk(client, commands, batch=5_000, on_batch=done.append) == 12_345
    assert [int(x) for x in client.lrange("order", 0, -1)] == list(range(12_345))
    assert done == [5_000, 10_000, 12_345]


def test_an_error_reply_raises_and_the_connection_stays_usable(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url, single_connection_client=False)
    client.set("text", "not a hash")
    commands = [("HSET", f"h{i}", "f", i) for i in range(10)] + [
        ("HSET", "text", "f", 1),
        ("SET", "after", 1),
    ]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        run_bulk(client, commands)
    assert (
        client.hget("h9", "f") == b"9" and client.get("after") == b"1"
    )  # the batch ran; Redis does not roll back
    assert client.ping() and client.get("text") == b"not a hash"  # no stray replies on the pooled connection
