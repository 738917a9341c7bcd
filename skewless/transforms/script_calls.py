"""A batch's APPLY_SCRIPT calls, built and packed a column at a time.

A stream batch of 2,000 events is up to 2,000 script calls per view, each with dozens of
arguments. Built as Python lists and packed by hiredis, those arguments cost the ingest process
more time than Redis took to run the scripts. Here polars builds them a column at a time: each
part of APPLY_SCRIPT's signature (stores/redis_layout.py) is a frame with a row per call, event,
key or update, already in the Redis protocol; sorted by call and then in signature order, a
call's rows lie end to end, and its command is their span. No Python object per argument, no
copy per call; the bytes equal hiredis's packing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from skewless.stores.byte_columns import BYTES, group_spans
from skewless.stores.redis_layout import APPLY_SCRIPT, LATEST_KEY, SEEN_KEY
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.tile_updates import merged_updates, state_keys

__all__ = ["ScriptCalls", "script_calls"]

#: A command's header; ``{}``: its argument count (the script's hash and its arguments follow).
_HEAD = "*{}\r\n$7\r\nEVALSHA\r\n$40\r\n" + hashlib.sha1(APPLY_SCRIPT.encode()).hexdigest() + "\r\n"
_FIRST_TILE_KEY = 3  # KEYS[1..2] are the entity's seen set and latest


@dataclass(frozen=True)
class ScriptCalls:
    """One APPLY_SCRIPT call per group of events (an entity's batch, or one event)."""

    groups: list[str]  # each call's ``__group``
    events: list[int]  # each call's event count
    packed: pa.Array  # each call as an EVALSHA command in the Redis protocol


def script_calls(plan: ViewPlan, events: pl.DataFrame, low_us: int | None = None) -> ScriptCalls:
    """The calls that apply ``events`` (counted, tagged, with ``__group``), in the order of
    their groups' first events. ``low_us``: no event still to be delivered arrived before it
    (default: each group's earliest arrival, right when groups are applied in arrival order, as
    a replay does)."""
    # Calls are numbered (``__group`` becomes an integer) and keys named by integers (``__kind``,
    # ``__tile``): grouping, joining and sorting by the text of entity tags and keys took about a
    # third of building a batch's calls. A key's text is written once, for its call's KEYS.
    first = pl.col("__label").is_first_distinct().cum_sum() - 1
    frame = (  # computed once: each aggregation's query starts from it
        events.rename({"__group": "__label"})
        .with_columns(__group=first)
        .with_columns(
            pl.col("__group").first().over("__label"),
            __now=pl.col("__ingest_us").min().over("__label"),
            __deadline=pl.col("__event_us") + plan.lateness_us,  # when a copy of the event is too late
        )
    )
    per_call = (
        frame.lazy()
        .group_by("__group")
        .agg(
            pl.col("__label", "__tag", "__now").first(),
            pl.col("__event_us").max().alias("__latest"),
            pl.len().alias("__events"),
        )
        .sort("__group")
        .with_columns(__low=pl.col("__now") if low_us is None else pl.min_horizontal("__now", pl.lit(low_us)))
    )
    calls, updates = _collect(per_call, merged_updates(plan, frame.lazy(), events.schema))
    # Sorted by key, a call's keys are numbered as they come (the script's KEYS) and a key's ops
    # lie together (the script adds a set's values in one call). Every op of a key asks for the
    # same expiry: its tile's end, from its call's ``__now``.
    new_group = pl.col("__group") != pl.col("__group").shift()
    new_key = (
        new_group
        | (pl.col("__kind") != pl.col("__kind").shift())
        | (pl.col("__tile") != pl.col("__tile").shift())
    ).fill_null(True)
    key_number = new_key.cum_sum()
    first_of_call = pl.when(new_group.fill_null(True)).then(key_number).forward_fill()
    (ops,) = _collect(
        updates.lazy()
        .sort("__group", "__kind", "__tile", "field", "value")
        .with_columns(__index=key_number - first_of_call + _FIRST_TILE_KEY, __new=new_key)
    )
    (live,) = _collect(  # each call's tile and set keys
        ops.lazy()
        .filter("__new")
        .join(calls.lazy().select("__group", "__tag"), on="__group", maintain_order="left")
        .with_columns(key=state_keys(plan, pl.col("__tag")))
    )
    counts = calls.with_columns(
        __live=_per_call(live, calls.height),
        __ops=_per_call(ops, calls.height),
        __latest_ttl=pl.lit(_latest_ttl_ms(plan)),
    )
    rows = {"calls": counts, "keys": live, "events": frame, "ops": ops}
    arguments = pl.concat([rows[part].lazy().select("__group", *columns) for part, columns in _SIGNATURE])
    (pieces,) = _collect(arguments.sort("__group", "__seg", maintain_order=True))
    # A call's pieces lie end to end once sorted: each command is their span, not a copy.
    starts = np.zeros(calls.height + 1, dtype=np.int64)
    np.cumsum(_per_call(pieces, calls.height), out=starts[1:])
    return ScriptCalls(
        calls["__label"].to_list(),
        calls["__events"].to_list(),
        group_spans(pc.cast(pieces["__arg"].to_arrow(), BYTES), starts),
    )


def _collect(*frames: pl.LazyFrame) -> list[pl.DataFrame]:
    """``frames``, computed. Polars' in-memory engine: the default picked one whose start-up
    cost dominated these small queries (one event: 27 → 11 ms of preparing per batch). No
    query optimization: the queries are written as they should run, and optimizing them took
    longer than running them on a small batch (one event, the example's two views: 10.0-10.3 →
    6.8-8.3 ms and 7.1-8.2 → 5.0-5.9 ms; 2,000 events unchanged; the same bytes)."""
    collected = pl.collect_all(frames, engine="in-memory", optimizations=pl.QueryOptFlags.none())
    assert isinstance(collected, list)  # not lazy
    return collected


def _per_call(rows: pl.DataFrame, calls: int) -> np.ndarray:
    """How many of ``rows`` each call (``__group``) has."""
    return np.bincount(rows["__group"].to_numpy(), minlength=calls)


def _framed(order: int, *arguments: str | pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """A part of a call's signature, ``order``-th: a row's ``arguments`` as text in the Redis
    protocol (``$<length>``, the text), as ``__seg`` and ``__arg``."""
    texts = [(pl.col(a) if isinstance(a, str) else a).cast(pl.String) for a in arguments]
    framed = [
        piece
        for text in texts
        for piece in (pl.lit("$"), text.str.len_bytes(), pl.lit("\r\n"), text, pl.lit("\r\n"))
    ]
    return pl.lit(order, pl.Int8).alias("__seg"), pl.concat_str(framed).alias("__arg")


#: A command, part by part: which rows make each part (a row per call, key, event or op), and
#: its text. The header counts EVALSHA's arguments: the hash, then APPLY_SCRIPT's signature
#: (stores/redis_layout.py). Built once, at import: they are the same for every batch.
_SIGNATURE: tuple[tuple[str, tuple[pl.Expr, pl.Expr]], ...] = (
    # EVALSHA, the hash, numkeys, 2 fixed keys, 7 fixed numbers; a key 3 (KEYS, its expiry's
    # index and ms), an event 2 (id, deadline), an op 4.
    ("calls", (
        pl.lit(-1, pl.Int8).alias("__seg"),
        pl.format(_HEAD, 12 + 3 * pl.col("__live") + 2 * pl.col("__events") + 4 * pl.col("__ops")).alias("__arg"),
    )),
    ("calls", _framed(0, pl.col("__live") + _FIRST_TILE_KEY - 1, pl.format(SEEN_KEY, "__tag"), pl.format(LATEST_KEY, "__tag"))),
    ("keys", _framed(1, "key")),
    ("calls", _framed(2, "__now", "__low", "__events")),
    ("events", _framed(3, pl.format("{}@{}", "__id", "__event_us"), "__deadline")),
    ("calls", _framed(4, "__latest", "__latest_ttl", "__ops")),
    ("ops", _framed(5, "__index", "op", "field", "value")),
    ("calls", _framed(6, "__live")),
    ("keys", _framed(7, "__index", "ttl")),
)  # fmt: skip


def _latest_ttl_ms(plan: ViewPlan) -> int:
    """How long to remember an entity's latest event: twice the TTL (0: forever, no TTL)."""
    return 0 if plan.ttl_us is None else 2 * plan.ttl_us // 1000
