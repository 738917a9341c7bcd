"""RESTORE payloads against the real Redis: byte for byte what DUMP gives, loaded under Redis's
deep payload check, and refused (None, or a null row) where Redis would not keep a listpack."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skewless.stores.redis_dump import SMALL, grouped_hash_payloads, hash_payloads, restores_hashes

# No value that reads as an integer: Redis's own listpack stores those as numbers.
_TEXT = st.binary(max_size=SMALL - 1).filter(lambda b: not b.strip(b"-").isdigit())


@pytest.fixture
def strict_redis(isolated_redis_url: str) -> Iterator[redis.Redis]:
    """The real Redis with every RESTORE payload checked deeply, and DUMP uncompressed."""
    client = redis.Redis.from_url(isolated_redis_url)
    if not restores_hashes(client):
        pytest.skip("RESTORE of listpacks needs Redis 7")
    saved = {**client.config_get("sanitize-dump-payload"), **client.config_get("rdbcompression")}
    client.config_set("sanitize-dump-payload", "yes")
    client.config_set("rdbcompression", "no")
    yield client
    client.config_set("sanitize-dump-payload", saved["sanitize-dump-payload"])
    client.config_set("rdbcompression", saved["rdbcompression"])


# The fixture's Redis is emptied by each example, and its settings hold for every one.
@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_payloads_are_what_redis_dumps(strict_redis: redis.Redis, data: st.DataObject) -> None:
    fields = data.draw(st.lists(_TEXT, min_size=1, max_size=12, unique=True))
    rows = data.draw(
        st.lists(st.lists(_TEXT, min_size=len(fields), max_size=len(fields)), min_size=1, max_size=5)
    )
    payloads = hash_payloads(
        fields, [pa.array(column, pa.large_binary()) for column in zip(*rows, strict=True)]
    )
    assert payloads is not None
    strict_redis.flushdb()
    for i, (row, payload) in enumerate(zip(rows, payloads.to_pylist(), strict=True)):
        strict_redis.hset(f"own{i}", mapping=dict(zip(fields, row, strict=True)))
        assert payload == strict_redis.dump(f"own{i}")
        strict_redis.restore(f"restored{i}", 0, payload)
        assert strict_redis.hgetall(f"restored{i}") == dict(zip(fields, row, strict=True))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(_TEXT, st.binary(max_size=SMALL + 5), min_size=1, max_size=70), max_size=6))
def test_grouped_payloads_are_what_redis_dumps(
    strict_redis: redis.Redis, hashes: list[dict[bytes, bytes]]
) -> None:
    fields = pa.array([f for h in hashes for f in h], pa.large_binary())
    values = pa.array([v for h in hashes for v in h.values()], pa.large_binary())
    starts = np.cumsum([0, *(len(h) for h in hashes)])
    payloads = grouped_hash_payloads(fields, values, starts).to_pylist()
    strict_redis.flushdb()
    for i, (fields_values, payload) in enumerate(zip(hashes, payloads, strict=True)):
        small = len(fields_values) <= 64 and all(len(v) < SMALL for v in fields_values.values())
        assert (payload is not None) == small
        if payload is None:
            continue
        strict_redis.restore(f"restored{i}", 0, payload)
        assert strict_redis.hgetall(f"restored{i}") == fields_values
        if not any(v.strip(b"-").isdigit() for v in fields_values.values()):  # Redis keeps those as numbers
            strict_redis.hset(f"own{i}", mapping=fields_values)
            assert payload == strict_redis.dump(f"own{i}")


def test_a_row_with_a_long_value_is_left_to_hset(strict_redis: redis.Redis) -> None:
    values = [pa.array([b"x" * (SMALL - 1), b"x" * SMALL, b"12"], pa.large_binary())]
    payloads = hash_payloads([b"f"], values)
    assert payloads is not None
    assert payloads.is_valid().to_pylist() == [True, False, True]
    strict_redis.restore("number", 0, payloads[2].as_py())  # stored as text, read back the same
    assert strict_redis.hget("number", b"f") == b"12"


def test_long_or_many_fields_take_no_payload() -> None:
    column = pa.array([b"v"], pa.large_binary())
    assert hash_payloads([b"f" * SMALL], [column]) is None
    assert hash_payloads([b"f%d" % i for i in range(65)], [column] * 65) is None
    assert hash_payloads([b"f"], [pa.array([b"x" * SMALL] * 3, pa.large_binary())]) is None  # no row is small


def test_redis_6_restores_no_listpack(embedded_redis_url: str) -> None:
    assert not restores_hashes(redis.Redis.from_url(embedded_redis_url))
