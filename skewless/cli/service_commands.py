"""``serve`` and ``log-worker``: the serving API and the process that moves its log offline."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import tempfile
from datetime import datetime
from typing import Annotated

import redis
import typer

from skewless._errors import ConfigError
from skewless.cli._common import RepoOption, console, err_console, stop_requested, warn_if_evicting
from skewless.feature_store import FeatureStore
from skewless.online.consumers import forget
from skewless.service.serving_log import LOG_DEAD, LOG_GROUP, LOG_STREAM, drain_serving_log
from skewless.settings import Settings
from skewless.stores.redis_outages import ride_out_outages

__all__ = ["keys_app", "log_worker", "serve"]


def _share_metrics_between_workers() -> None:
    """A fresh directory where every worker keeps its Prometheus values, so /metrics adds them
    up (see skewless/service/metrics.py); set before anything imports prometheus_client."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = tempfile.mkdtemp(prefix="skewless-metrics-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["PROMETHEUS_MULTIPROCESS_DIR"] = directory


def _check_port(host: str, port: int) -> None:
    """Fail here, in one line, when the server could not listen (uvicorn would log its own error)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]  # IPv4 or IPv6
        with socket.create_server((host, port), family=family):
            pass
    except OSError as exc:  # create_server's message adds the address again: keep the reason
        reason = str(exc.strerror or exc).split(" (while attempting", 1)[0].lower()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {reason}; pick another --port or --host."
        ) from exc


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 6566,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each stateless).")] = 1,
    auth: Annotated[
        bool, typer.Option("--auth/--no-auth", help="Require API keys (read scope to serve, write to push).")
    ] = True,
    repo: RepoOption = None,
) -> None:
    """Serve online features over HTTP (Feast's /get-online-features JSON), /push, /health, /metrics.

    OpenAPI docs at /docs. Every served vector is logged; run `skewless log-worker` to move the
    log into the offline store.
    """
    import uvicorn

    _share_metrics_between_workers()
    settings = Settings.load(repo)
    os.environ["SKEWLESS_REPO"] = str(settings.repo)  # workers rebuild the app from the environment
    os.environ["SKEWLESS_AUTH"] = "on" if auth else "off"
    client = FeatureStore(settings=settings).redis
    client.ping()  # fail here, clearly, if Redis is unreachable
    warn_if_evicting(client)  # the serving log and pushed events live in Redis until moved
    _check_port(host, port)
    guard = "API keys required" if auth else "no authentication"
    err_console.print(f"Serving {settings.repo} on http://{host}:{port} ({guard}; docs at /docs).")
    uvicorn.run(
        "skewless.service.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,  # a log line per request costs throughput; /metrics counts requests
    )


def log_worker(
    claim_after: Annotated[
        float,
        typer.Option(min=0, help="Take over entries a dead worker left unacknowledged this many seconds."),
    ] = 30.0,
    repo: RepoOption = None,
) -> None:
    """Move the serving log from its Redis Stream into hourly parquet partitions (data/serving_log).

    Entries are acknowledged only after their file is written: stopping or killing the worker
    loses nothing. What was moved is then trimmed from the stream. A worker leaves the consumer
    group when it stops; live ones remove workers that died once their entries are taken over.
    An entry that cannot be moved (its views changed definition, or it is malformed) is kept in
    `skewless:serving_log:dead` with the reason, said here. When Redis goes away, it waits for it
    and goes on.
    """
    store = FeatureStore(settings=Settings.load(repo))
    warn_if_evicting(store.redis)
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    handled = kept = 0

    def keep(entry_id: str, reason: str) -> None:
        nonlocal kept
        kept += 1
        err_console.print(f"Kept logged request {entry_id} in {LOG_DEAD}: {reason}", highlight=False)

    def drain() -> None:
        nonlocal handled
        handled += drain_serving_log(
            store, consumer, claim_idle_ms=int(claim_after * 1000), on_dead_letter=keep
        )

    ride_out_outages(
        store.redis,
        drain,
        until=stop_requested(),
        on_outage=lambda line: err_console.print(line, highlight=False),
    )
    with contextlib.suppress(redis.RedisError):  # else a live worker removes it once idle
        forget(store.redis, LOG_STREAM, LOG_GROUP, consumer)  # unless it holds pending entries
    where = store.settings.repo / "data" / "serving_log"
    console.print(
        f"Moved {handled - kept:,} logged requests to {where}"
        + (f"; kept {kept:,} in {LOG_DEAD}." if kept else ".")
    )


keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored hashed, with scopes).", no_args_is_help=True
)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. checkout-service.")],
    scopes: Annotated[
        list[str] | None,
        typer.Option("--scope", help="read, write or admin; repeat for more (default: read)."),
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Create a key and print it once (it is stored only as a hash)."""
    from skewless.service.auth import ApiKeys

    scopes = scopes or ["read"]
    key = ApiKeys(FeatureStore(settings=Settings.load(repo)).database).create(name, scopes)
    console.print(key, highlight=False, soft_wrap=True)
    err_console.print(
        f"Created key '{name}' ({', '.join(sorted(set(scopes)))}). Store it now: it cannot be shown again."
    )


def _stamp(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


@keys_app.command("list")
def keys_list(repo: RepoOption = None) -> None:
    """List keys: prefix, name, scopes, created, last used, revoked."""
    from rich.table import Table

    from skewless.service.auth import ApiKeys

    table = Table("prefix", "name", "scopes", "created", "last used", "revoked")
    for row in ApiKeys(FeatureStore(settings=Settings.load(repo)).database).list():
        table.add_row(
            row.prefix,
            row.name,
            ",".join(row.scopes),
            _stamp(row.created_at),
            _stamp(row.last_used_at),
            _stamp(row.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (the part after skl_).")],
    repo: RepoOption = None,
) -> None:
    """Revoke a key; servers stop accepting it within 30 seconds."""
    from skewless._errors import ConfigError
    from skewless.service.auth import ApiKeys

    if not ApiKeys(FeatureStore(settings=Settings.load(repo)).database).revoke(prefix):
        raise ConfigError(f"no active key with prefix '{prefix}'; see `skewless keys list`.")
    console.print(f"Revoked key {prefix}.")
