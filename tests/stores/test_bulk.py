"""Bulk writes against the real Redis: commands packed as hiredis packs them, order kept,
progress reported, an error reply raised after its batch is read, and the connection left clean
for the next caller."""

from __future__ import annotations

import itertools

import hiredis
import numpy as np
import pyarrow as pa
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from skewless.stores.bulk import Restores, pack_commands, pack_grouped, run_bulk

_ARG = st.one_of(
    st.binary(max_size=40).map(lambda b: ("same", b)),
    st.binary(min_size=3, max_size=3).map(lambda b: ("same-width", b)),
    st.just(("column", None)),
)


@settings(deadline=None)  # timing belongs in bench/, not in a test
@given(st.integers(1, 30), st.lists(_ARG, min_size=1, max_size=8), st.data())
def test_packed_rows_are_the_redis_protocol(
    height: int, kinds: list[tuple[str, bytes | None]], data: st.DataObject
) -> None:
    args: list[bytes | pa.Array] = [b"COLUMN-FIRST"]
    columns = [[] for _ in range(height)]  # each row's arguments, as hiredis takes them
    for kind, constant in kinds:
        if kind == "same":
            args.append(constant)  # type: ignore[arg-type]
            values = [constant] * height
        else:
            width = st.binary(min_size=3, max_size=3) if kind == "same-width" else st.binary(max_size=300)
            values = data.draw(st.lists(width, min_size=height, max_size=height))
            args.append(pa.array(values, pa.large_binary()))
        for row, value in zip(columns, values, strict=True):
            row.append(value)
    args.append(pa.array([b"last"] * height, pa.binary()))
    packed = pack_commands(args)
    assert packed.to_pylist() == [hiredis.pack_command((b"COLUMN-FIRST", *row, b"last")) for row in columns]


def test_a_column_with_nulls_is_refused() -> None:
    with pytest.raises(ValueError, match="nulls"):
        pack_commands([b"SET", pa.array([b"k", None])])


def _rpush(values: range) -> pa.Array:
    return pack_commands([b"RPUSH", b"order", pa.array([str(i).encode() for i in values], pa.binary())])


def test_batches_run_in_order_with_progress(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url)
    done: list[int] = []
    batches = [_rpush(range(0, 5_000)), _rpush(range(5_000, 5_000)), _rpush(range(5_000, 10_000))]
    batches.append(_rpush(range(10_000, 12_345)))
    assert run_bulk(client, batches, on_batch=done.append) == 12_345
    assert [int(x) for x in client.lrange("order", 0, -1)] == list(range(12_345))
    assert done == [5_000, 5_000, 10_000, 12_345]  # an empty batch on the way changes nothing
    assert run_bulk(client, []) == 0


def test_a_sliced_batch_sends_only_its_rows(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url)
    assert run_bulk(client, [_rpush(range(10)).slice(3, 4)]) == 4
    assert client.lrange("order", 0, -1) == [b"3", b"4", b"5", b"6"]


def test_an_error_reply_raises_and_the_connection_stays_usable(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url, single_connection_client=False)
    client.set("text", "not a hash")
    keys = [f"h{i}".encode() for i in range(10)] + [b"text", b"after"]
    batch = pack_commands([b"HSET", pa.array(keys), b"f", b"1"])
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        run_bulk(client, [batch])
    assert client.hget("h9", "f") == b"1" and client.hget("after", "f") == b"1"  # Redis does not roll back
    assert client.ping() and client.get("text") == b"not a hash"  # no stray replies on the pooled connection


@settings(deadline=None)  # timing belongs in bench/, not in a test
@given(
    st.lists(
        st.tuples(st.sampled_from([b"k1", b"key-2", b"k3"]), st.binary(max_size=20), st.binary(max_size=5))
    )
)
def test_grouped_commands_hold_each_group_of_rows(rows: list[tuple[bytes, bytes, bytes]]) -> None:
    rows = sorted(rows, key=lambda row: row[0])
    starts = [i for i in range(len(rows)) if i == 0 or rows[i][0] != rows[i - 1][0]] + [len(rows)]
    keys = pa.array([rows[i][0] for i in starts[:-1]], pa.large_binary())
    items = [pa.array([row[1] for row in rows]), pa.array([row[2] for row in rows])]
    packed = pack_grouped([b"HSET", keys], items, np.array(starts if rows else [0]))
    expected = [
        hiredis.pack_command((b"HSET", rows[a][0], *[x for row in rows[a:b] for x in row[1:]]))
        for a, b in itertools.pairwise(starts)
    ]
    assert packed.to_pylist() == expected


def test_refused_restores_are_written_instead_which_says_why_it_cannot(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url)
    client.set("k1", "exists")
    client.set("payload", "v")
    payload = client.dump("payload")
    keys = pa.array([b"k0", b"k1", b"k2", b"k3"])
    written: list[list[int]] = []

    def instead(positions: np.ndarray) -> pa.Array:
        written.append(positions.tolist())
        return pack_commands([b"SET", keys.take(positions), b"instead"])

    payloads = pa.array([payload, payload, b"not a payload", payload])
    restores = Restores(pack_commands([b"RESTORE", keys, b"0", payloads]), instead)
    assert run_bulk(client, [restores]) == 4
    assert written == [[1, 2]]  # the key that exists, and the payload Redis refused
    assert client.mget("k0", "k1", "k2", "k3") == [b"v", b"instead", b"instead", b"v"]
    client.rpush("list", "x")
    failing = Restores(
        pack_commands([b"RESTORE", pa.array([b"list"]), b"0", payload]),
        lambda positions: pack_commands([b"HSET", pa.array([b"list"]), b"f", b"v"]),
    )
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        run_bulk(client, [failing])


def test_a_command_answered_in_more_than_one_line_is_refused(isolated_redis_url: str) -> None:
    """Replies are counted by lines, so a bulk write of GETs would be miscounted: refused."""
    client = redis.Redis.from_url(isolated_redis_url)
    client.set("k", "v")
    with pytest.raises(ValueError, match="one line"):
        run_bulk(client, [pack_commands([b"GET", pa.array([b"k", b"k"])])])
    assert client.ping()


def test_a_slice_of_restores_reports_refused_rows_of_the_whole_batch(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url)
    client.set("payload", "v")
    client.set("s3", "exists")
    keys = pa.array([b"s0", b"s1", b"s2", b"s3"])
    refused: list[list[int]] = []

    def instead(positions: np.ndarray) -> pa.Array:
        refused.append(positions.tolist())
        return pack_commands([b"SET", keys.take(positions), b"instead"])

    restores = Restores(pack_commands([b"RESTORE", keys, b"0", client.dump("payload")]), instead)
    assert len(restores) == 4
    assert run_bulk(client, [restores.slice(0, 2), restores.slice(2, 2)]) == 4
    assert refused == [[3]] and client.mget("s0", "s3") == [b"v", b"instead"]
