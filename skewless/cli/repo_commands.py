"""``init``, ``plan`` and ``apply``: create a repo, see what would change, register it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from skewless._errors import ConfigError
from skewless._resources import resource_dir
from skewless.cli._common import RepoOption, console, err_console, load, open_metadata
from skewless.repo.check_data import check_repo_data
from skewless.repo.feast_store import feast_store
from skewless.repo.plan import Plan, apply_plan, make_plan
from skewless.stores.redis_connection import resolve_redis_url

__all__ = ["apply", "init", "plan"]

_ACTION_STYLE = {"add": "[green]+ add[/]", "change": "[yellow]~ change[/]", "remove": "[red]- remove[/]"}
_TEMPLATE_SKIP = shutil.ignore_patterns("data", ".skewless", "__pycache__", "*.pyc")


def _show_plan(result: Plan) -> None:
    if result.is_empty:
        console.print(f"[green]No changes.[/] {len(result.desired)} definitions match what is applied.")
        return
    table = Table(title="Planned changes", title_justify="left")
    for column in ("action", "kind", "name", "version", "what changed"):
        table.add_column(column)
    for change in result.changes:
        versions = " → ".join(v for v in (change.previous_version, change.version) if v)
        table.add_row(
            _ACTION_STYLE[change.action], change.kind, change.name, versions, "\n".join(change.details)
        )
    console.print(table)


def _show_notes(notes: list[str]) -> None:
    for note in notes:
        err_console.print(f"[dim]note: {note}[/]")


def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create the repo in.")],
    events: Annotated[int, typer.Option(help="Example events to generate (0: no data).")] = 100_000,
) -> None:
    """Create a new feature repo with the card-fraud example, ready to plan and apply."""
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} is not empty; pick a new directory for the repo.")
    shutil.copytree(resource_dir("feature_repo"), directory, ignore=_TEMPLATE_SKIP, dirs_exist_ok=True)
    console.print(f"Created a feature repo in [bold]{directory}[/] (feature_store.yaml, fraud.py).")
    if events:
        from skewless.cli.data_commands import generate

        generate(repo=directory, events=events)
    console.print(
        f"Next: [bold]skewless plan --repo {directory}[/] then [bold]skewless apply --repo {directory}[/]."
    )


def plan(repo: RepoOption = None) -> None:
    """Show what `apply` would add, change or remove, without applying anything.

    A changed transform body, window, granularity, TTL or schema counts as a change.
    """
    settings, loaded = load(repo)
    _show_notes(check_repo_data(loaded))
    _show_plan(make_plan(loaded, open_metadata(settings)))


def apply(repo: RepoOption = None) -> None:
    """Register the repo's definitions with Feast and record their versions.

    Feast's own `feast plan` then reports no changes, and `feast feature-views list` shows every view.
    """
    settings, loaded = load(repo)
    _show_notes(check_repo_data(loaded))
    database = open_metadata(settings)
    result = make_plan(loaded, database)
    _show_plan(result)
    store = feast_store(settings, resolve_redis_url(settings, notify=err_console.print))
    with err_console.status("Registering with Feast …"):
        apply_plan(result, loaded, database, store)
    console.print(
        f"[green]Applied.[/] {len(loaded.views)} views, {len(loaded.entities)} entities and "
        f"{len(loaded.sources)} sources registered with Feast project '{store.project}'."
    )
