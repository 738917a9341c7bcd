"""Killing the API and the log worker in the middle of load loses no acknowledged served vector
(real processes: uvicorn serving, the log worker, SIGKILL, restarts)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import polars as pl
import redis

from skewless.service.serving_log import LOG_GROUP, LOG_STREAM
from tests.service.processes import free_port, serving_env, start, wait_http


def test_no_acknowledged_vector_is_lost(example_repo: Path, isolated_redis_url: str, tmp_path: Path) -> None:
    env = serving_env(example_repo, isolated_redis_url, tmp_path, events=1_000, cards=20)
    port = free_port()
    serve = ["serve", "--no-auth", "--port", str(port), "--repo", str(example_repo)]
    worker_args = ["log-worker", "--claim-after", "0.5", "--repo", str(example_repo)]
    api, worker = start(serve, env), start(worker_args, env)
    url = f"http://127.0.0.1:{port}/get-online-features"
    acknowledged: list[str] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        for i in range(300):
            if i == 100:
                worker.send_signal(signal.SIGKILL)  # the log worker dies mid-load ...
                worker.wait(10)
                worker = start(worker_args, env)  # ... and comes back
            if i == 200:
                api.send_signal(signal.SIGKILL)  # the API dies mid-load ...
                api.wait(10)
                api = start(serve, env)  # ... and comes back on the same port
                wait_http(f"http://127.0.0.1:{port}/health")
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
    # The killed worker left the group once its entries were taken over, the stopped one as it stopped.
    assert redis.Redis.from_url(isolated_redis_url).xinfo_consumers(LOG_STREAM, LOG_GROUP) == []
    assert set(acknowledged) <= set(logged["request_id"].to_list())
    assert logged.group_by("request_id").len()["len"].max() == 2  # two entity rows per request, none doubled
