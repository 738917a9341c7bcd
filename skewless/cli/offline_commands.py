"""``backfill`` and ``training-set``: offline work on history, with progress bars."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from skewless._errors import ConfigError
from skewless.cli._common import RepoOption, console, err_console, interruptible, parse_utc
from skewless.feature_store import FeatureStore
from skewless.offline.training_set import read_entities
from skewless.settings import Settings

__all__ = ["backfill", "training_set"]


def backfill(
    views: Annotated[
        list[str] | None,
        typer.Argument(
            help="Feature views to backfill (default: all; a plain view has nothing to backfill)."
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First day, ISO (UTC if no zone); default: the first event.")
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="End (exclusive), rounded up to a whole day; default: after the last event."),
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Compute feature values at every event and write them to the offline store, one partition per UTC day.

    Re-running a range replaces its days, so a backfill is idempotent. It keeps the events it
    prepared in .skewless/prepared/, where training sets start from them.
    """
    store = FeatureStore(settings=Settings.load(repo))
    with (
        interruptible("Interrupted: run the same command again (a backfill replaces its days)."),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeElapsedColumn(),
            console=err_console,
        ) as progress,
    ):
        tasks: dict[str, TaskID] = {}

        def on_day(view: str, day: datetime, rows: int, days: int) -> None:
            if view not in tasks:
                tasks[view] = progress.add_task(f"backfill {view}", total=days, rows=0)
            progress.update(
                tasks[view],
                advance=1,
                rows=progress.tasks[tasks[view]].fields["rows"] + rows,
                description=f"backfill {view} {day:%Y-%m-%d}",
            )

        results = store.backfill(
            views or (), start=parse_utc(start, "--start"), end=parse_utc(end, "--end"), on_day=on_day
        )
    for result in results:
        console.print(
            f"{result.view}: wrote {result.rows:,} rows in {result.days} daily partitions ({result.start:%Y-%m-%d} to {result.end:%Y-%m-%d})."
        )
    store.close()


def training_set(
    entities: Annotated[
        Path,
        typer.Option(
            help="Entity rows: parquet, or CSV with the join keys and a timestamp column of ISO 8601 "
            "times with a zone (2026-11-20T10:00:00Z)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output file, .parquet or .csv.")],
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--features", "-f", help="Feature reference view:feature (view:* for all); repeat for more."
        ),
    ] = None,
    feature_service: Annotated[
        str | None,
        typer.Option("--feature-service", "-s", help="A feature service's features, instead of --features."),
    ] = None,
    timestamp_column: Annotated[
        str, typer.Option(help="Timestamp column of the entity rows.")
    ] = "event_timestamp",
    as_available: Annotated[
        bool, typer.Option("--as-available", help="Count only events ingested by each row's time.")
    ] = False,
    full_feature_names: Annotated[
        bool, typer.Option("--full-feature-names", help="Name columns view__feature.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Name recorded in the metadata DB (default: the output file's stem).")
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Build a point-in-time correct training set and record it in the metadata DB.

    The first training set over a windowed view's history keeps it prepared in
    .skewless/prepared/ (events and tiles, rebuilt when the data or the repo's code change), so
    later ones start from there; delete that directory to reclaim the space.
    """
    if bool(features) == bool(feature_service):
        raise ConfigError("give --features (one or more view:feature) or --feature-service NAME, not both.")
    store = FeatureStore(settings=Settings.load(repo))
    join_keys = {entity.join_key: entity.dtype for entity in store.repo.entities.values()}
    frame = read_entities(entities, join_keys, timestamp_column)
    refs = store.feature_refs(features or str(feature_service))
    with (
        interruptible("Interrupted: the training set was not recorded; run the command again."),
        err_console.status(f"Computing {len(refs)} feature refs for {frame.height:,} entity rows …"),
    ):
        built = store.create_training_set(
            frame,
            refs,
            out,
            name=name,
            timestamp_column=timestamp_column,
            full_feature_names=full_feature_names,
            as_available=as_available,
        )
    versions = ", ".join(f"{v}@{h}" for v, h in built.definition_versions.items())
    console.print(f"Wrote {built.rows:,} rows to {built.path} (training set #{built.id}; {versions}).")
    store.close()
