"""`skewless serve --workers 2` (real processes): /metrics counts every worker's requests, whichever
worker answers the scrape."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from skewless._errors import ConfigError
from skewless.cli.service_commands import _check_port
from tests.service.processes import SKEWLESS, free_port, serving_env, start, wait_http


def test_metrics_add_up_every_worker(example_repo: Path, isolated_redis_url: str, tmp_path: Path) -> None:
    env = serving_env(example_repo, isolated_redis_url, tmp_path, events=200, cards=5)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # as on a fresh shell: `serve` makes its own
    port = free_port()
    api = start(
        ["serve", "--no-auth", "--workers", "2", "--port", str(port), "--repo", str(example_repo)], env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health")
        body = {"features": ["card_profile:country"], "entities": {"card_id": ["c000001"]}}
        for _ in range(40):  # a new connection each: the kernel spreads them over both workers
            assert httpx.post(f"{base}/get-online-features", json=body, timeout=5).status_code == 200
        counts = []
        for _ in range(10):
            text = httpx.get(f"{base}/metrics", timeout=5).text
            found = re.search(
                r'skewless_requests_total\{code="200",endpoint="get-online-features"\} (\S+)', text
            )
            assert found, text[:2000]
            counts.append(float(found.group(1)))
        assert "feast_" not in text  # only the API's own series
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(30)
    assert counts == [40.0] * 10


def test_a_port_it_cannot_listen_on_is_one_line(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    env = serving_env(example_repo, isolated_redis_url, tmp_path, events=200, cards=5)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [SKEWLESS, "serve", "--port", str(port), "--repo", str(example_repo)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert busy.returncode == 1 and busy.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: address already in use; pick another --port or --host."
    )
    out_of_range = subprocess.run(
        [SKEWLESS, "serve", "--port", "99999", "--repo", str(example_repo)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out_of_range.returncode == 2 and "Invalid value for '--port'" in out_of_range.stderr


def test_an_ipv6_host_passes_the_check() -> None:
    """`serve --host ::` listens on IPv6: the check binds the host's own address family."""
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6) as probe:
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    _check_port("::1", port)
    with (
        socket.create_server(("::1", port), family=socket.AF_INET6),
        pytest.raises(ConfigError, match="in use"),
    ):
        _check_port("::1", port)
