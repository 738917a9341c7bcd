"""Dead letters: the stream entries `skewless ingest` could not apply, kept with the reason.

``<stream>:dead`` keeps the newest ``DEAD_LETTER_MAX`` of them, each with the entry's own fields,
``__reason`` and ``__entry`` (the id of the entry it came from): a producer sending garbage at
full rate must not fill the Redis that serves features. ``<stream>:dead:counts`` counts every
dead letter ever written, by kind of reason (the reason up to its first ``:``), so trimming
loses no count. `skewless dead-letters` and the API's ``/metrics`` read both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis
from redis.client import Pipeline

__all__ = [
    "DEAD_LETTER_MAX",
    "DeadLetter",
    "DeadLetters",
    "Rejected",
    "add_dead_letters",
    "dead_letter_counts",
    "dead_letter_stream",
    "read_dead_letters",
    "reason_kind",
]

#: Dead letters kept per stream (about 300 bytes each for the example's transactions).
DEAD_LETTER_MAX = 100_000

#: An entry's fields: as read from the stream (bytes), or a parsed row's columns (text).
Fields = Mapping[bytes, bytes] | Mapping[str, str]


@dataclass(frozen=True)
class Rejected:
    """A stream entry ``skewless ingest`` will not apply: its id, its fields, and why."""

    entry: bytes | str
    fields: Fields
    reason: str


def dead_letter_stream(stream: str) -> str:
    return f"{stream}:dead"


def _counts_key(stream: str) -> str:
    return f"{stream}:dead:counts"


def reason_kind(reason: str) -> str:
    """What a reason says without its particulars: "too late: arrived 4000 s after …" is
    "too late"; a reason without a ``:`` is its own kind."""
    return reason.split(":", 1)[0]


def add_dead_letters(pipe: Pipeline, stream: str, letters: Sequence[Rejected], *, keep: int) -> None:
    """Queue on ``pipe`` the writes of ``letters`` to ``stream``'s dead letters (each entry's
    fields with ``__reason`` and ``__entry``), the stream cut to its newest ``keep``, and their
    counts by kind."""
    dead = dead_letter_stream(stream)
    for letter in letters:
        fields = {_bytes(k): v for k, v in letter.fields.items()}
        fields |= {b"__reason": letter.reason.encode(), b"__entry": _bytes(letter.entry)}
        pipe.xadd(dead, fields, maxlen=keep, approximate=False)  # type: ignore[arg-type]
    for kind, count in Counter(reason_kind(letter.reason) for letter in letters).items():
        pipe.hincrby(_counts_key(stream), kind, count)


def dead_letter_counts(client: redis.Redis, stream: str) -> dict[str, int]:
    """Every dead letter ``stream`` ever had, by kind of reason."""
    counts = client.hgetall(_counts_key(stream))
    return {_text(kind): int(count) for kind, count in counts.items()}  # type: ignore[union-attr]


@dataclass(frozen=True)
class DeadLetter:
    """One kept dead letter: the id of the stream entry it came from, the reason, and the
    entry's fields (those it had, or the parsed event's columns)."""

    entry: str
    reason: str
    fields: dict[str, str]


@dataclass(frozen=True)
class DeadLetters:
    """A stream's dead letters: counted by kind of reason, how many are kept, the newest ones."""

    stream: str
    counts: dict[str, int]
    kept: int
    newest: list[DeadLetter]


def read_dead_letters(client: redis.Redis, stream: str, *, last: int) -> DeadLetters:
    """``stream``'s dead-letter counts and its ``last`` newest dead letters, newest first."""
    dead = dead_letter_stream(stream)
    entries = client.xrevrange(dead, count=last) if last > 0 else []
    newest = []
    for _, raw in entries:  # type: ignore[union-attr]
        fields = {_text(k): _text(v) for k, v in raw.items()}
        newest.append(DeadLetter(fields.pop("__entry", ""), fields.pop("__reason", ""), fields))
    return DeadLetters(stream, dead_letter_counts(client, stream), int(client.xlen(dead)), newest)  # type: ignore[arg-type]


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
