"""The local redis-server skewless starts when REDIS_URL is unset is real, found again, stoppable."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from skewless import StoreError
from skewless.settings import Settings
from skewless.stores.redis_connection import (
    connect_redis,
    local_redis_url,
    resolve_redis_url,
    stop_local_redis,
)


def test_local_redis_starts_once_and_is_reused(tmp_path: Path) -> None:
    said: list[str] = []
    url = local_redis_url(tmp_path, notify=said.append)
    try:
        client = connect_redis(url)
        client.set("k", "v")
        assert client.info("server")["redis_version"]  # a real server answers INFO
        assert local_redis_url(tmp_path, notify=said.append) == url
        assert len(said) == 1 and "Started a local Redis" in said[0] and "REDIS_URL" in said[0]
        assert (tmp_path / "redis" / "appendonly.aof").exists() or (
            tmp_path / "redis" / "appendonlydir"
        ).exists()
    finally:
        assert stop_local_redis(tmp_path)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    assert not stop_local_redis(tmp_path)


def test_local_redis_keeps_data_across_restarts(tmp_path: Path) -> None:
    url = local_redis_url(tmp_path, notify=lambda _: None)
    connect_redis(url).set("kept", "yes")
    stop_local_redis(tmp_path)
    url = local_redis_url(tmp_path, notify=lambda _: None)
    try:
        assert connect_redis(url).get("kept") == b"yes"
    finally:
        stop_local_redis(tmp_path)


def test_redis_url_wins_over_the_local_server(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "feature_store.yaml").write_text("project: x\n")
    settings = Settings.load(tmp_path, env={"REDIS_URL": redis_url})
    assert resolve_redis_url(settings, notify=pytest.fail) == redis_url
    assert not (tmp_path / ".skewless" / "redis").exists()


def test_unreachable_redis_is_one_clear_line() -> None:
    with pytest.raises(
        StoreError, match=r"^Redis at redis://127.0.0.1:1/0 is not reachable .*; start it or fix REDIS_URL.$"
    ):
        connect_redis("redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("localhost:6379", "'localhost:6379'"),  # Feast's connection_string form
        ("redis://127.0.0.1:abc/0", "'redis://127.0.0.1:abc/0'"),
    ],
)
def test_a_redis_url_that_is_not_one_says_how_to_write_it(url: str, shown: str) -> None:
    """Both were an "internal error … please report it"."""
    with pytest.raises(
        StoreError, match=f"^REDIS_URL {shown} is not a Redis URL .*like redis://localhost:6379/0.$"
    ):
        connect_redis(url)


def test_a_password_in_redis_url_is_not_shown(redis_url: str) -> None:
    with_password = redis_url.replace("redis://", "redis://:s3cret@", 1)
    with pytest.raises(StoreError) as refused:  # this Redis has no password: AUTH fails
        connect_redis(with_password)
    assert "s3cret" not in str(refused.value) and ":***@" in str(refused.value)


def test_a_server_that_never_answers_is_said_in_seconds() -> None:
    """A listener that accepts and never replies (``rediss://`` to a plain Redis does the same)
    was waited for 30 s, the read timeout of long-running loops."""
    import socket
    import time

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        started = time.monotonic()
        with pytest.raises(StoreError, match="is not reachable .*Timeout"):
            connect_redis(f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        assert time.monotonic() - started < 15
