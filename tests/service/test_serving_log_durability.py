"""Killing the API and the log worker in the middle of load loses no acknowledged served vector
(real processes: uvicorn serving, the log worker, SIGKILL, restarts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import redis

from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.service.serving_log import LOG_GROUP, LOG_STREAM

SKEWLESS = str(Path(sys.executable).with_name("skewless"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([SKEWLESS, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code in (200, 503):
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_no_acknowledged_vector_is_lost(example_repo: Path, isolated_redis_url: str, tmp_path: Path) -> None:
    write_example_data(
        example_repo / "data",
        FraudDataSpec(events=1_000, cards=20, days=1, end=datetime.now(UTC) - timedelta(minutes=1)),
    )
    env = {
        **os.environ,
        "REDIS_URL": isolated_redis_url,
        "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
    }
    port = _free_port()
    serve = ["serve", "--no-auth", "--port", str(port), "--repo", str(example_repo)]
    worker_args = ["log-worker", "--claim-after", "0.5", "--repo", str(example_repo)]
    api, worker = _start(serve, env), _start(worker_args, env)
    url = f"http://127.0.0.1:{port}/get-online-features"
    acknowledged: list[str] = []
    try:
        _wait_http(f"http://127.0.0.1:{port}/health")
        for i in range(300):
            if i == 100:
                worker.send_signal(signal.SIGKILL)  # the log worker dies mid-load ...
                worker.wait(10)
                worker = _start(worker_args, env)  # ... and comes back
            if i == 200:
                api.send_signal(signal.SIGKILL)  # the API dies mid-load ...
                api.wait(10)
                api = _start(serve, env)  # ... and comes back on the same port
                _wait_http(f"http://127.0.0.1:{port}/health")
            request_id = f"req-{i}"
            try:
                response = httpx.post(
                    url,
                    json={
                        "features": ["card_profile:country", "card_activity:count_1h"],
                        "entities": {"card_id": ["c000001", "c000002"]},
                        "request_id": request_id,
                    },
                    timeout=5,
                )
            except httpx.HTTPError:
                continue  # not acknowledged: the client would retry
            if response.status_code == 200:
                acknowledged.append(request_id)
        client = redis.Redis.from_url(isolated_redis_url)
        deadline = time.monotonic() + 60
        while client.xinfo_groups(LOG_STREAM)[0]["lag"] or client.xpending(LOG_STREAM, LOG_GROUP)["pending"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"log not drained: {client.xpending(LOG_STREAM, LOG_GROUP)}")
            time.sleep(0.1)
    finally:
        for process in (api, worker):
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    logged = pl.read_parquet(
        example_repo / "data" / "serving_log" / "**" / "*.parquet", hive_partitioning=False
    )
    assert len(acknowledged) >= 290
    assert set(acknowledged) <= set(logged["request_id"].to_list())
    assert logged.group_by("request_id").len()["len"].max() == 2  # two entity rows per request, none doubled
