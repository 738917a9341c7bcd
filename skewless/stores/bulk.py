"""Many commands in few round trips, for materialization and stream batches.

redis-py's pipeline packs each command in Python and parses each reply through several layers;
for a hundred thousand HSETs that cost more than Redis took to run them. Here a batch of
commands is packed column-wise (``pack_commands``: one command per row, in the Redis protocol)
and sent as one buffer; the caller encodes the next batches while Redis runs it. Replies are
counted by their lines straight from the socket, and parsed by hiredis only where one is an
error.
``call_packed`` runs one packed batch (the executor's scripts) and returns its replies.
"""

from __future__ import annotations

import contextlib
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import redis

from skewless.stores.byte_columns import BYTES, decimal_text, group_spans, join_rows, row_offsets

__all__ = [
    "call_packed",
    "frame_commands",
    "pack_commands",
    "pack_grouped",
    "Restores",
    "restored_or",
    "run_bulk",
    "text_column",
]

_READ_SIZE = 1 << 16
#: Commands sent but not yet answered before the oldest batch's replies are read. Redis keeps
#: the replies meanwhile (a few bytes each); the limit bounds that.
_IN_FLIGHT = 200_000


def pack_commands(args: Sequence[bytes | pa.Array]) -> pa.Array:
    """One command per row, in the Redis protocol: each argument is the same ``bytes`` in every
    row or a column (no nulls) with a row's own value."""
    return join_rows([b"*%d\r\n" % len(args), *_framed(args)])


def frame_commands(head: Sequence[bytes], frame: pl.DataFrame, *columns: str) -> pa.Array:
    """One command per row of ``frame``: ``head``, then the row's ``columns`` as text."""
    return pack_commands([*head, *(text_column(frame, c) for c in columns)])


def text_column(frame: pl.DataFrame, column: str) -> pa.Array:
    """A column as the text Redis reads (numbers in decimal), in Arrow."""
    return frame[column].cast(pl.String).to_arrow()


def pack_grouped(head: Sequence[bytes | pa.Array], items: Sequence[pa.Array], starts: np.ndarray) -> pa.Array:
    """One command per group of item rows: ``head`` (its columns hold a value per group), then
    every ``items`` value of each of the group's rows, in order — an HSET of all of a key's
    fields, say. ``starts``: where each group begins in the item rows, then the row count."""
    if len(starts) < 2:
        return pa.array([], BYTES)
    grouped = group_spans(join_rows(_framed(items)), starts)  # the item rows' protocol, by group
    arity = len(head) + np.diff(starts) * len(items)
    return join_rows([b"*", decimal_text(pa.array(arity)), b"\r\n", *_framed(head), grouped])


def _contiguous(column: pa.Array) -> memoryview:
    """Every row of a packed column (or a slice of one), which lie end to end in its data: one
    zero-copy view to send."""
    offsets = row_offsets(column)
    return memoryview(column.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def _framed(args: Sequence[bytes | pa.Array]) -> list[bytes | pa.Array]:
    """Each argument as a bulk string: ``$<length>`` and the bytes."""
    parts: list[bytes | pa.Array] = []
    for arg in args:
        if isinstance(arg, bytes):
            parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
            continue
        if arg.null_count:
            raise ValueError("a command argument column has nulls")
        lengths = pc.binary_length(arg)
        low, high = pc.min_max(lengths).values()
        if low.is_valid and low == high:  # equally long in every row (numbers, ids, keys): a constant prefix
            parts += [b"$%d\r\n" % low.as_py(), arg, b"\r\n"]
        else:
            parts += [b"$", pc.cast(lengths, pa.large_string()), b"\r\n", arg, b"\r\n"]
    return parts


@dataclass(frozen=True)
class Restores:
    """``RESTORE`` commands (stores/redis_dump.py), and how to write their rows another way:
    ``instead(positions)`` gives the commands for the rows whose ``RESTORE`` Redis refused —
    the key exists (``BUSYKEY``), or this Redis or user may not run it (a managed Redis, an
    ACL). Whatever refused the ``RESTORE``, the other command either writes the row or says
    why it cannot (a full Redis, say)."""

    commands: pa.Array
    instead: Callable[[np.ndarray], pa.Array]

    def __len__(self) -> int:
        return len(self.commands)

    def slice(self, start: int, length: int) -> Restores:
        """Rows ``start`` to ``start + length``, as ``pa.Array.slice``: a refused row's position
        still reaches ``instead`` as the whole batch's."""
        return Restores(self.commands.slice(start, length), lambda positions: self.instead(positions + start))


def restored_or(
    keys: pa.Array, ttl: bytes | pa.Array, payloads: pa.Array, written: Callable[[np.ndarray], pa.Array]
) -> list[pa.Array | Restores]:
    """A ``RESTORE`` (with ``ttl``: a constant, or a column of ms) of each key whose payload is
    not null, any Redis refuses written by ``written(positions)`` instead; then the rows without
    a payload, by ``written`` too. Positions are rows of ``keys``."""
    small = payloads.is_valid().to_numpy(zero_copy_only=False)
    restored, others = np.flatnonzero(small), np.flatnonzero(~small)
    batches: list[pa.Array | Restores] = []
    if len(restored):
        chosen = pa.array(restored)
        expiry = ttl if isinstance(ttl, bytes) else ttl.take(chosen)
        commands = pack_commands([b"RESTORE", keys.take(chosen), expiry, payloads.take(chosen)])
        batches.append(Restores(commands, lambda positions: written(restored[positions])))
    if len(others):
        batches.append(written(others))
    return batches


def run_bulk(
    client: redis.Redis,
    batches: Iterable[pa.Array | Restores],
    *,
    on_batch: Callable[[int], None] = lambda done: None,
) -> int:
    """Run each batch of packed commands (``pack_commands``) in order; returns how many ran.

    Batches are sent as they come, and the replies of the oldest are read only once more than
    ``_IN_FLIGHT`` commands are unanswered: Redis runs those while the caller builds the next
    batches. A ``Restores`` batch's refused rows are sent again, written ``instead``, as the
    next batch. ``on_batch(done)`` follows the replies of every batch. Raises
    ``redis.RedisError`` for a lost connection or the first error reply of any other batch (the
    batches sent before it was read, some after it, were applied)."""
    in_flight: deque[tuple[int, Callable[[np.ndarray], pa.Array] | None]] = deque()
    done = 0
    with _connection(client) as (connection, _):
        replies = _OneLineReplies(connection)

        def send(batch: pa.Array | Restores) -> None:
            commands, instead = (
                (batch.commands, batch.instead) if isinstance(batch, Restores) else (batch, None)
            )
            _send(connection, _contiguous(commands))
            in_flight.append((len(commands), instead))

        def answered() -> None:
            nonlocal done
            count, instead = in_flight.popleft()
            errors = replies.errors(count)
            if errors and instead is not None:
                send(instead(np.array([i for i, _ in errors])))
            elif errors:
                raise redis.ResponseError(str(errors[0][1]))
            done += count - len(errors)
            on_batch(done)

        for batch in batches:
            send(batch)
            while sum(count for count, _ in in_flight) > _IN_FLIGHT:
                answered()
        while in_flight:
            answered()
    return done


class _OneLineReplies:
    """The replies of bulk writes, counted as they arrive: each is one line (a status, an
    integer or an error), so ``count`` replies end at the ``count``-th newline, found in C, and
    only a run of replies holding an error is parsed. Parsed one by one through hiredis, the
    1.4M replies of the benchmark's windowed materialization took about 1 s of the client."""

    def __init__(self, connection: redis.Connection) -> None:
        self.connection = connection
        self.chunks: list[bytes] = []
        self.lines = 0  # newlines in ``chunks``

    def errors(self, count: int) -> list[tuple[int, hiredis.ReplyError]]:
        """Read the next ``count`` replies; the error replies among them, by position."""
        if not count:  # an empty batch: no newline to look for
            return []
        while self.lines < count:
            chunk = _receive(self.connection)
            self.chunks.append(chunk)
            self.lines += chunk.count(b"\n")
        data = b"".join(self.chunks)
        end = len(data)
        if self.lines > count:  # the next batch's replies follow
            end = int(np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))[count - 1]) + 1
        run, rest = data[:end], data[end:]
        self.chunks, self.lines = ([rest] if rest else []), self.lines - count
        if run.startswith((b"$", b"*")) or b"\n$" in run or b"\n*" in run:
            raise ValueError("run_bulk takes commands answered in one line: a status, an integer or an error")
        if not (run.startswith(b"-") or b"\n-" in run):
            return []
        reader = hiredis.Reader()
        reader.feed(run)
        return [(i, r) for i in range(count) if isinstance(r := reader.gets(), hiredis.ReplyError)]


def call_packed(client: redis.Redis, packed: pa.Array) -> list[Any]:
    """Run packed commands (one per row, in the Redis protocol) in one round trip and return
    their replies in order; an error reply is returned as a ``hiredis.ReplyError`` for the
    caller to judge (a script missing from Redis's cache, say)."""
    if not len(packed):
        return []
    with _connection(client) as (connection, reader):
        _send(connection, _contiguous(packed))
        return _replies(connection, reader, len(packed))


@contextlib.contextmanager
def _connection(client: redis.Redis) -> Iterator[tuple[redis.Connection, hiredis.Reader]]:
    """A pooled connection and a reply reader; on any error the connection is dropped, so no
    reply is left in flight on one that goes back to the pool."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        yield connection, hiredis.Reader()
    except BaseException:
        connection.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(connection)


def _send(connection: redis.Connection, data: bytes | memoryview) -> None:
    try:
        _socket(connection).sendall(data)
    except OSError as exc:
        raise redis.ConnectionError(f"writing to Redis: {exc}") from exc


def _socket(connection: redis.Connection) -> socket.socket:
    """The connected socket of a pooled connection (redis-py keeps no public accessor)."""
    sock = connection._sock
    if sock is None:
        raise redis.ConnectionError("the bulk connection is not connected")
    return sock


def _receive(connection: redis.Connection) -> bytes:
    try:
        chunk = _socket(connection).recv(_READ_SIZE)
    except OSError as exc:
        raise redis.ConnectionError(f"reading from Redis: {exc}") from exc
    if not chunk:
        raise redis.ConnectionError("Redis closed the connection during a bulk write")
    return chunk


def _replies(connection: redis.Connection, reader: hiredis.Reader, count: int) -> list[Any]:
    """The next ``count`` replies, error replies included as ``hiredis.ReplyError``."""
    replies: list[Any] = []
    while len(replies) < count:
        reply = reader.gets()
        if reply is False:
            reader.feed(_receive(connection))
        else:
            replies.append(reply)
    return replies
