"""Serving: skewless serve (logging on) vs feast serve vs a bare FastAPI+HMGET endpoint, all with
2 workers on loopback, driven by wrk; plus 100-entity reads through the in-process SDK."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.common import WORK, run_child, write_section
from skewless.service.serving_log import LOG_STREAM

FEATURES = [
    f"card_profile6:{f}"
    for f in ("credit_limit", "country", "card_type", "risk_score", "account_age_days", "is_business")
]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, body: dict[str, object]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.post(url, json=body, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _wrk(url: str, body: dict[str, object], connections: int, seconds: int = 10) -> dict[str, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": ms(" 50"), "p99": ms(" 99"), "errors": int(errors.group(1)) if errors else 0}


def _sdk_100(repo: Path) -> dict[str, float]:
    from skewless.feature_store import FeatureStore
    from skewless.settings import Settings

    store = FeatureStore(
        settings=Settings.load(
            repo, env={"REDIS_URL": REDIS_URL, "SKEWLESS_DATABASE_URL": f"sqlite:///{repo / 'bench.db'}"}
        )
    )
    cards = {"card_id": [f"c{i:06d}" for i in range(100)]}
    for _ in range(50):
        store.get_online_features(FEATURES, cards)
    times = []
    for _ in range(1000):
        start = time.perf_counter()
        store.get_online_features(FEATURES, cards)
        times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=100)
    return {"p50": q[49], "p99": q[98]}


def main() -> None:
    if shutil.which("wrk") is None:
        print("serving benchmark skipped: install wrk (apt-get install wrk)")
        return
    repo = WORK / "online"  # prepared by bench/online.py
    # The streaming benchmark flushes its Redis database: load the served view again, so every
    # server reads (and decodes) present values rather than answering NOT_FOUND.
    run_child("bench.online_child", "skewless", str(repo), REDIS_URL)
    redis.Redis.from_url(REDIS_URL).delete(LOG_STREAM)  # earlier runs' log: no log worker runs here
    yaml = repo / "feature_store.yaml"
    yaml.write_text(
        yaml.read_text().replace(
            'connection_string: "localhost:6379"', 'connection_string: "localhost:6379,db=14"'
        )
    )
    import polars as pl

    from skewless.stores.feast_format import encode_entity_key, feature_field

    key = encode_entity_key(["card_id"], ["c000001"], [pl.String()], "card_fraud").hex()
    fields = ",".join(feature_field("card_profile6", f.split(":")[1]).hex() for f in FEATURES)
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "SKEWLESS_DATABASE_URL": f"sqlite:///{repo / 'bench.db'}",
        "BENCH_REDIS_URL": REDIS_URL,
        "BENCH_KEY": key,
        "BENCH_FIELDS": fields,
    }
    bin_dir = Path(sys.executable).parent
    ports = {name: _port() for name in ("skewless", "feast", "bare")}
    commands = {
        "skewless": [
            str(bin_dir / "skewless"),
            "serve",
            "--no-auth",
            "--workers",
            "2",
            "--port",
            str(ports["skewless"]),
            "--repo",
            str(repo),
        ],
        "feast": [
            str(bin_dir / "feast"),
            "serve",
            "-w",
            "2",
            "--max-requests",
            "0",
            "--no-access-log",
            "-p",
            str(ports["feast"]),
        ],
        "bare": [
            str(bin_dir / "uvicorn"),
            "bench.bare_app:app",
            "--workers",
            "2",
            "--port",
            str(ports["bare"]),
            "--log-level",
            "warning",
        ],
    }
    body = {"features": FEATURES, "entities": {"card_id": ["c000001"]}}
    processes = {
        name: subprocess.Popen(
            cmd,
            env=env,
            cwd=repo if name == "feast" else Path.cwd(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, cmd in commands.items()
    }
    results: dict[str, dict[int, dict[str, float]]] = {}
    try:
        for port in ports.values():
            _wait(f"http://127.0.0.1:{port}/get-online-features", body)
        for name, port in ports.items():
            url = f"http://127.0.0.1:{port}/get-online-features"
            _wrk(url, body, 16, seconds=3)  # warm-up, not reported: every worker answered before
            results[name] = {c: _wrk(url, body, c) for c in (1, 16)}
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(30)
    sdk = _sdk_100(repo)
    s16, f16, b16 = results["skewless"][16], results["feast"][16], results["bare"][16]
    lines = [
        "1 entity × 6 features (plain view `card_profile6`), POST /get-online-features, loopback, 2 server workers each, wrk 10 s per row; skewless logs every served vector.",
        "",
        "| server | concurrency | requests/s | p50 ms | p99 ms | non-2xx |",
        "| --- | --- | --- | --- | --- | --- |",
        *[
            f"| {name} | {c} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} |"
            for name, by_c in results.items()
            for c, r in by_c.items()
        ],
        "",
        f"At concurrency 16 skewless serves **{s16['rps'] / f16['rps']:.1f}× Feast's requests/s** (target ≥ 3×) with p99 {s16['p99'] / b16['p99']:.2f}× the bare endpoint's (target ≤ 1.3×); p99 at concurrency 1: {results['skewless'][1]['p99']:.2f} ms (target ≤ 1.0 ms).",
        f"100 entities × 6 features through the in-process SDK (1,000 reads): p50 {sdk['p50']:.2f} ms, p99 {sdk['p99']:.2f} ms (target p99 ≤ 1.5 ms).",
    ]
    write_section("Serving", "\n".join(lines))
    print("\n".join(lines))
