"""What every command shares: the --repo option, the console, loading settings and the repo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from skewless.metadata import Database, open_database
from skewless.repo.loader import Repo, load_repo
from skewless.settings import Settings

__all__ = ["RepoOption", "console", "err_console", "load", "open_metadata"]

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
