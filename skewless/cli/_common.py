"""What every command shares: the --repo option, the console, loading settings and the repo, times given as options."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.console import Console

from skewless._errors import ConfigError
from skewless.metadata import Database, open_database
from skewless.repo.loader import Repo, load_repo
from skewless.settings import Settings
from skewless.stores.redis_memory import eviction_warning

__all__ = [
    "RepoOption",
    "console",
    "err_console",
    "interruptible",
    "load",
    "open_metadata",
    "parse_utc",
    "stop_requested",
    "warn_if_evicting",
]

console = Console()
err_console = Console(stderr=True)

RepoOption = Annotated[
    Path | None,
    typer.Option(
        "--repo",
        "-r",
        help="Feature repo directory (default: $SKEWLESS_REPO, else . or ./feature_repo).",
        show_default=False,
    ),
]


def load(repo: Path | None) -> tuple[Settings, Repo]:
    """Settings and the loaded repo, or a one-line error naming what is wrong."""
    settings = Settings.load(repo)
    with err_console.status(f"Loading definitions from {settings.repo} …"):
        return settings, load_repo(settings.repo)


def open_metadata(settings: Settings) -> Database:
    """The metadata database, migrated to head."""
    return open_database(settings.database_url)


def warn_if_evicting(client: redis.Redis) -> None:
    """Say so, before a command writes to Redis, when Redis may evict what it writes
    (stores/redis_memory.py)."""
    if message := eviction_warning(client):
        err_console.print(message, style="yellow", highlight=False)


def stop_requested() -> Callable[[], bool]:
    """A check that turns true after SIGTERM or Ctrl-C, so long-running loops finish their batch."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return lambda: stopping


@contextlib.contextmanager
def interruptible(message: str) -> Iterator[None]:
    """Ctrl-C inside prints ``message`` (what the interruption left, what to do) and exits 130.

    DuckDB turns a Ctrl-C during a query into ``RuntimeError("Query interrupted")``; the flag the
    handler sets tells that from an error of the work itself."""
    pressed = False

    def handler(*_: object) -> None:
        nonlocal pressed
        pressed = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    except (KeyboardInterrupt, Exception):
        if not pressed:
            raise
        err_console.print(message, highlight=False)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)


def parse_utc(value: str | None, option: str) -> datetime | None:
    """An ISO date or datetime from the command line; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(
            f"{option} {value!r} is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T12:00Z."
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
