"""The API's pipelined Redis connection against real redis-servers: concurrent callers each get
their own reply, AUTH, SELECT and unix sockets work, errors and lost connections reach the
caller, and the next call connects again."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import redis

from skewless.service.redis_pipe import RedisPipe, pack
from skewless.stores.redis_connection import _free_port
from tests.service.processes import redis_server


def test_concurrent_callers_get_their_own_replies(redis_url: str) -> None:
    async def run() -> list[bytes]:
        pipe = RedisPipe(redis_url)
        return await asyncio.gather(*(pipe.call(pack("ECHO", f"reply-{i}")) for i in range(500)))

    assert asyncio.run(run()) == [f"reply-{i}".encode() for i in range(500)]


def test_errors_reach_their_caller_and_later_calls_still_match(redis_url: str) -> None:
    async def run() -> tuple[BaseException | bytes, ...]:
        pipe = RedisPipe(redis_url)
        return tuple(
            await asyncio.gather(
                pipe.call(pack("ECHO", "a")), pipe.call(pack("NOSUCHCOMMAND")), pipe.call(pack("ECHO", "b")),
                return_exceptions=True,
            )
        )  # fmt: skip

    first, error, last = asyncio.run(run())
    assert (first, last) == (b"a", b"b")
    assert isinstance(error, redis.ResponseError) and "unknown command" in str(error)


def test_a_cancelled_caller_does_not_shift_the_replies(redis_url: str) -> None:
    async def run() -> bytes:
        pipe = RedisPipe(redis_url)
        await pipe.call(pack("PING"))
        slow = asyncio.ensure_future(pipe.call(pack("EVAL", "return redis.call('ECHO', 'slow')", 0)))
        await asyncio.sleep(0)  # written, not yet answered
        slow.cancel()
        return await pipe.call(pack("ECHO", "mine"))  # type: ignore[no-any-return]

    assert asyncio.run(run()) == b"mine"


def test_auth_select_and_unix_socket(tmp_path: Path) -> None:
    port = _free_port()
    server = redis_server(port, tmp_path, password="s3cret")
    try:
        for url in (f"redis://:s3cret@127.0.0.1:{port}/3", f"unix://:s3cret@{tmp_path / 'redis.sock'}?db=3"):
            assert asyncio.run(RedisPipe(url).call(pack("SET", "k", url))) == b"OK"
            assert redis.Redis(port=port, password="s3cret", db=3).get("k") == url.encode()
        with pytest.raises(redis.ResponseError, match="WRONGPASS|invalid"):
            asyncio.run(RedisPipe(f"redis://:wrong@127.0.0.1:{port}/0").call(pack("PING")))
    finally:
        server.kill()
        server.wait()


def test_a_lost_server_fails_the_call_and_the_next_call_reconnects(tmp_path: Path) -> None:
    port = _free_port()
    server = redis_server(port, tmp_path)

    async def run() -> None:
        nonlocal server
        pipe = RedisPipe(f"redis://127.0.0.1:{port}/0")
        assert await pipe.call(pack("PING")) == b"PONG"
        server.kill()
        server.wait()
        with pytest.raises(redis.ConnectionError):
            await pipe.call(pack("PING"))
        with pytest.raises(redis.ConnectionError, match="cannot connect"):
            await pipe.call(pack("PING"))  # still down
        server = redis_server(port, tmp_path)
        assert await pipe.call(pack("PING")) == b"PONG"

    try:
        asyncio.run(run())
    finally:
        server.kill()
        server.wait()


def test_a_hung_server_fails_the_call_after_the_reply_timeout(tmp_path: Path) -> None:
    port = _free_port()
    server = redis_server(port, tmp_path)

    async def run() -> None:
        pipe = RedisPipe(f"redis://127.0.0.1:{port}/0", reply_timeout=0.5)
        assert await pipe.call(pack("PING")) == b"PONG"
        server.send_signal(signal.SIGSTOP)  # alive, connected, silent
        try:
            with pytest.raises(redis.ConnectionError, match="no reply in time"):
                await asyncio.wait_for(pipe.call(pack("PING")), 5)
        finally:
            server.send_signal(signal.SIGCONT)
        assert await pipe.call(pack("PING")) == b"PONG"  # a new connection

    try:
        asyncio.run(run())
    finally:
        server.kill()
        server.wait()
