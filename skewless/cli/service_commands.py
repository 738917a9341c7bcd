"""``serve`` and ``log-worker``: the serving API and the process that moves its log offline."""

from __future__ import annotations

import os
import signal
import socket
from typing import Annotated

import typer

from skewless.cli._common import RepoOption, console, err_console
from skewless.feature_store import FeatureStore
from skewless.service.serving_log import drain_serving_log
from skewless.settings import Settings

__all__ = ["log_worker", "serve"]


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 6566,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each stateless).")] = 1,
    repo: RepoOption = None,
) -> None:
    """Serve online features over HTTP (Feast's /get-online-features JSON), /push, /health, /metrics.

    OpenAPI docs at /docs. Every served vector is logged; run `skewless log-worker` to move the
    log into the offline store.
    """
    import uvicorn

    settings = Settings.load(repo)
    os.environ["SKEWLESS_REPO"] = str(settings.repo)  # workers rebuild the app from the environment
    FeatureStore(settings=settings).redis.ping()  # fail here, clearly, if Redis is unreachable
    err_console.print(f"Serving {settings.repo} on http://{host}:{port} (docs at /docs).")
    uvicorn.run(
        "skewless.service.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


def log_worker(repo: RepoOption = None) -> None:
    """Move the serving log from its Redis Stream into hourly parquet partitions (data/serving_log).

    Entries are acknowledged only after their file is written: stopping or killing the worker loses nothing.
    """
    store = FeatureStore(settings=Settings.load(repo))
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    moved = 0
    while not stopping:
        moved += drain_serving_log(store.redis, store.settings.repo, consumer)
    console.print(f"Moved {moved:,} logged requests to {store.settings.repo / 'data' / 'serving_log'}.")
