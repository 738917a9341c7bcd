"""Entry point: the typer app, and the one place that turns errors into one-line messages."""

from __future__ import annotations

import platform
import sys
from typing import Annotated

import redis
import typer

from skewless._errors import SkewlessError
from skewless._version import __version__
from skewless.cli._common import RepoOption, console, err_console
from skewless.cli.data_commands import generate
from skewless.cli.demo_command import demo
from skewless.cli.offline_commands import backfill, training_set
from skewless.cli.online_commands import compact, dead_letters, ingest, materialize
from skewless.cli.repo_commands import apply, init, plan
from skewless.cli.scheduler_command import scheduler
from skewless.cli.service_commands import keys_app, log_worker, serve
from skewless.settings import Settings
from skewless.stores.redis_connection import stop_local_redis
from skewless.stores.redis_outages import stall

__all__ = ["app", "run"]

app = typer.Typer(
    name="skewless",
    help="One feature definition, computed identically offline (DuckDB) and online (Redis), "
    "with training/serving skew monitors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Options every command accepts."""


@app.command()
def version() -> None:
    """Print the versions of skewless, Feast and Python."""
    import feast

    console.print(f"skewless {__version__} (feast {feast.__version__}, python {platform.python_version()})")


@app.command("redis-stop")
def redis_stop(repo: RepoOption = None) -> None:
    """Stop the local Redis skewless started for this repo (its data stays on disk)."""
    stopped = stop_local_redis(Settings.load(repo).state_dir)
    console.print("Stopped the local Redis." if stopped else "No local Redis was running for this repo.")


app.command()(demo)
app.command()(init)
app.command()(plan)
app.command()(apply)
app.command()(generate)
app.command()(backfill)
app.command("training-set")(training_set)
app.command()(materialize)
app.command()(ingest)
app.command("dead-letters")(dead_letters)
app.command()(compact)
app.command()(serve)
app.command("log-worker")(log_worker)
app.command()(scheduler)
app.add_typer(keys_app, name="keys")


def run() -> None:
    """Run the CLI. Usage errors are typer's own (the usage, one line, exit 2); skewless's errors,
    and Redis's or the file system's in the middle of the work, print one line and exit 1;
    anything else is a bug, still one line. --debug shows tracebacks."""
    debug = "--debug" in sys.argv
    try:
        app()
    except SkewlessError as exc:
        if debug:
            raise
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except redis.RedisError as exc:  # Redis went away, or refused, in the middle of the work
        if debug:
            raise
        err_console.print(f"[red]error:[/] {_redis_failure(exc)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as exc:  # a file or directory: missing, in the way, not writable, disk full
        if debug:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(
            f"[red]error:[/] {exc.strerror or exc}{where}; check the path, its permissions and the free disk space.",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except Exception as exc:  # a bug in skewless: still one line unless --debug
        if debug:
            raise
        err_console.print(
            f"[red]internal error:[/] {type(exc).__name__}: {exc} (run again with --debug for the "
            "traceback, and please report it)",
            highlight=False,
        )
        sys.exit(2)


def _redis_failure(exc: redis.RedisError) -> str:
    """What a Redis error in the middle of a command means, and what to do."""
    found = stall(exc)
    return (
        f"Redis refused a command: {exc}" if found is None else f"{found.reason} Then run the command again."
    )
