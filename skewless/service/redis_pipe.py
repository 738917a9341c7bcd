"""One pipelined Redis connection per event loop, for the API's hot path.

Each request of a uvicorn worker sends one script call. With redis-py's asyncio client every call
takes a pooled connection, packs its arguments one by one, and reads its reply through stream
objects. Here every request writes its command onto one shared connection as it comes, and
replies are matched to callers in order (Redis answers each connection in order), so concurrent
requests share their reads. Measured under load on 2 cores: see docs/architecture.md (Serving).

Connection setup (URL forms, AUTH, SELECT, TLS) follows redis-py's URL parsing. A lost connection
fails the calls in flight (the API answers 503) and the next call connects again; so does a
connection whose oldest call has waited ``reply_timeout`` seconds (a hung server or network),
checked by one timer per connection rather than one per call.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ssl
import time
from typing import Any

import hiredis
import redis
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url

__all__ = ["RedisPipe", "pack"]

_CONNECT_TIMEOUT_S = 2.0


def pack(*args: bytes | str | int) -> bytes:
    """A command in RESP, the Redis wire format (packed by hiredis, in C)."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub types a 1-tuple
    return packed


class _Replies(asyncio.Protocol):
    """Parses replies as they arrive and hands each to the oldest waiting caller."""

    def __init__(self, reply_timeout: float) -> None:
        self.reader = hiredis.Reader(replyError=redis.ResponseError)
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.reply_timeout = reply_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._watch()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the stream is out of step, start over
                if self.transport is not None:
                    self.transport.abort()
                return
            waiter, _ = self.waiting.popleft()
            if waiter.done():  # its caller was cancelled: the reply is dropped, order kept
                continue
            if isinstance(reply, redis.ResponseError):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        reason = exc or ("no reply in time" if self.waiting else "closed")
        error = redis.ConnectionError(f"connection to Redis lost ({reason})")
        while self.waiting:
            waiter, _ = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def _watch(self) -> None:
        """Drop the connection once its oldest call waited too long; check again later."""
        if self.transport is None:
            return
        if self.waiting and time.monotonic() - self.waiting[0][1] > self.reply_timeout:
            self.transport.abort()  # connection_lost fails every waiting call
            return
        asyncio.get_running_loop().call_later(min(1.0, self.reply_timeout / 2), self._watch)


class RedisPipe:
    """Sends packed commands on one connection of the running loop; connects on first use."""

    def __init__(self, url: str, *, reply_timeout: float = 5.0) -> None:
        self.options = parse_url(url)  # type: ignore[no-untyped-call]
        self.reply_timeout = reply_timeout
        self._protocol: _Replies | None = None
        self._connecting = asyncio.Lock()

    async def call(self, packed: bytes) -> Any:
        """The reply to one packed command (``pack``); a RedisError if Redis fails or refuses."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            protocol = await self._connect()
        return await _send(protocol, packed)

    async def _connect(self) -> _Replies:
        async with self._connecting:
            if self._protocol is not None and self._protocol.transport is not None:
                return self._protocol  # another request connected meanwhile
            loop = asyncio.get_running_loop()
            options = self.options
            try:
                replies = functools.partial(_Replies, self.reply_timeout)
                if options.get("connection_class") is UnixDomainSocketConnection:
                    opening = loop.create_unix_connection(replies, options["path"])
                else:
                    tls = (
                        ssl.create_default_context()
                        if options.get("connection_class") is SSLConnection
                        else None
                    )
                    opening = loop.create_connection(
                        replies, options.get("host", "localhost"), options.get("port", 6379), ssl=tls
                    )
                _, protocol = await asyncio.wait_for(opening, _CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise redis.ConnectionError(f"cannot connect to Redis: {exc or 'timed out'}") from exc
            try:
                if options.get("password"):
                    credentials = [options["username"]] if options.get("username") else []
                    await _send(protocol, pack("AUTH", *credentials, options["password"]))
                if options.get("db"):
                    await _send(protocol, pack("SELECT", options["db"]))
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.close()  # refused (e.g. a wrong password): not kept open
                raise
            self._protocol = protocol  # only now may requests use it: AUTH and SELECT came first
            return protocol


def _send(protocol: _Replies, packed: bytes) -> asyncio.Future[Any]:
    if protocol.transport is None:
        raise redis.ConnectionError("connection to Redis lost")
    waiter = asyncio.get_running_loop().create_future()
    protocol.waiting.append((waiter, time.monotonic()))
    protocol.transport.write(packed)
    return waiter
