"""Real processes for the tests (`skewless`, redis-server): start one, wait until it answers; fill a
Redis; wait for a condition."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis

from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.stores.redis_connection import _redis_server_binary

SKEWLESS = str(Path(sys.executable).with_name("skewless"))


def serving_env(repo: Path, redis_url: str, tmp_path: Path, *, events: int, cards: int) -> dict[str, str]:
    """Example data ending a minute ago in ``repo``, and the environment to serve it from."""
    write_example_data(
        repo / "data",
        FraudDataSpec(events=events, cards=cards, days=1, end=datetime.now(UTC) - timedelta(minutes=1)),
    )
    return {**os.environ, "REDIS_URL": redis_url, "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([SKEWLESS, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code in (200, 503):
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def redis_server(port: int, directory: Path, password: str | None = None) -> subprocess.Popen[bytes]:
    """A real redis-server of the test's own (so the test can stop it), also on a unix socket
    ``directory/redis.sock``; ``password`` turns on AUTH."""
    auth = ["--requirepass", password] if password else []
    server = subprocess.Popen(
        [_redis_server_binary(), "--port", str(port), "--save", "", "--dir", str(directory),
         "--unixsocket", str(directory / "redis.sock"), *auth],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if redis.Redis(port=port, password=password).ping():
                return server
        time.sleep(0.05)
    server.kill()  # not left running behind the test
    server.wait(10)
    raise RuntimeError("redis-server did not start")


def fill_redis(client: redis.Redis) -> list[str]:
    """Fill Redis with 5 MB, then give it a maxmemory 1 MB above what it used before: full, it
    refuses writes until the filler keys it returns are deleted. (One SET each: a single command
    of 5 MB would hold that much in its query buffer, which Redis frees a moment later.)"""
    before = int(client.info("memory")["used_memory"])
    keys = [f"fill:{i}" for i in range(500)]
    for key in keys:
        client.set(key, b"x" * 10_000)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", before + 1_000_000)
    return keys


def wait_until(predicate: Callable[[], bool], seconds: float) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
