"""``generate``: write the card-fraud example data into a repo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skewless.cli._common import RepoOption, console, err_console
from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.settings import Settings

__all__ = ["generate"]


def generate(
    repo: RepoOption = None,
    events: Annotated[
        int, typer.Option(min=1, help="Transactions to generate (plus ~0.5% duplicates).")
    ] = 1_000_000,
    days: Annotated[
        int, typer.Option(min=1, help="Days of history, ending at the start of today (UTC).")
    ] = 30,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and day give the same data.")] = 7,
) -> None:
    """Generate the example's transactions and card profiles into `<repo>/data/`."""
    settings = Settings.load(repo)
    spec = FraudDataSpec(events=events, days=days, seed=seed)
    data_dir: Path = settings.repo / "data"
    with err_console.status(f"Generating {events:,} transactions over {days} days …"):
        counts = write_example_data(data_dir, spec)
    summary = ", ".join(f"{rows:,} {name}" for name, rows in counts.items())
    console.print(f"Wrote {summary} to {data_dir} ({spec.start:%Y-%m-%d} to {spec.end:%Y-%m-%d}).")
