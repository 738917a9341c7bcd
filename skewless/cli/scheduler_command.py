"""``scheduler``: run materialization and compaction on schedules (APScheduler), in one
long-lived process."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from skewless.cli._common import RepoOption, console, err_console, warn_if_evicting
from skewless.feature_store import FeatureStore
from skewless.settings import Settings
from skewless.transforms.durations import parse_duration

__all__ = ["scheduler"]


def scheduler(
    materialize_every: Annotated[
        str, typer.Option(help="How often to run `materialize --incremental` for every view, e.g. 5m.")
    ] = "5m",
    compact_every: Annotated[
        str, typer.Option(help="How often to merge the files `ingest` lands (`skewless compact`), e.g. 1h.")
    ] = "1h",
    repo: RepoOption = None,
) -> None:
    """Run incremental materialization of every view, and compaction of the streams' landed
    files, on fixed intervals until stopped.

    Runs of a job never overlap (a slow run delays the next); materializations are recorded in
    the metadata DB.
    """
    from apscheduler.schedulers.blocking import BlockingScheduler

    interval = parse_duration(materialize_every, what="--materialize-every")
    compact_interval = parse_duration(compact_every, what="--compact-every")
    store = FeatureStore(settings=Settings.load(repo))
    warn_if_evicting(store.redis)

    def materialize() -> None:
        try:
            for result in store.materialize(incremental=True):
                console.print(f"materialized {result.view}: {result.written:,} written")
        except Exception as exc:  # keep the schedule alive; the run is recorded as failed
            err_console.print(f"[red]materialization failed:[/] {exc}", highlight=False, soft_wrap=True)

    def compact() -> None:
        try:
            for source, result in store.compact().items():
                console.print(f"compacted {source}: {result.files_before:,} → {result.files_after:,} files")
        except Exception as exc:  # keep the schedule alive
            err_console.print(f"[red]compaction failed:[/] {exc}", highlight=False, soft_wrap=True)

    blocking = BlockingScheduler(timezone="UTC")
    for job, every in ((materialize, interval), (compact, compact_interval)):
        blocking.add_job(job, "interval", seconds=every.total_seconds(), max_instances=1, coalesce=True)
    err_console.print(
        f"Materializing every {materialize_every}, compacting every {compact_every} (Ctrl-C to stop)."
    )
    materialize()
    with contextlib.suppress(KeyboardInterrupt, SystemExit):  # Ctrl-C / SIGTERM: stop cleanly
        blocking.start()
    store.close()
