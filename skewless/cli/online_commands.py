"""``materialize``, ``ingest``, ``dead-letters`` and ``compact``: fill the online store from
history and from streams, show what a stream could not apply, and keep the streams' offline
history in few files."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from skewless.cli._common import (
    RepoOption,
    console,
    err_console,
    interruptible,
    parse_utc,
    stop_requested,
    warn_if_evicting,
)
from skewless.feature_store import FeatureStore
from skewless.online.dead_letters import DEAD_LETTER_MAX, DeadLetter
from skewless.online.ingest import StreamIngestor
from skewless.settings import Settings
from skewless.stores.redis_outages import OUTAGE_ERRORS
from skewless.transforms.durations import parse_duration

__all__ = ["compact", "dead_letters", "ingest", "materialize"]


def materialize(
    views: Annotated[list[str] | None, typer.Argument(help="Views to materialize (default: all).")] = None,
    incremental: Annotated[
        bool, typer.Option("--incremental", help="Apply only events ingested since the last run's watermark.")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option(help="Load only events from this event time on, ISO (UTC if no zone); default: all."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Load only events up to this event time (included), ISO; default: now."),
    ] = None,
    repo: RepoOption = None,
) -> None:
    """Load history into Redis: latest rows for plain views, window tiles for feature views.

    A full run recomputes the online state as of now (re-running an interrupted one starts over).
    `--start`/`--end` load only the events of that event-time range, like Feast's `materialize
    START END`: a plain view keeps stored rows newer than the range's, a windowed view's state is
    replaced by the range's (a `--start` that would cut its windows short is refused).
    `--incremental` resumes from the watermark in the metadata DB without double counting.

    A full run or a range of a windowed view is refused while `skewless ingest` writes it: stop
    ingest (it resumes where it left off), run this, and start it again.
    """
    window = parse_utc(start, "--start"), parse_utc(end, "--end")
    store = FeatureStore(settings=Settings.load(repo))
    warn_if_evicting(store.redis)
    with (
        interruptible(
            "Interrupted: the view being loaded may be partly written in Redis; "
            "run the same command again to complete it."
        ),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
        ) as progress,
    ):
        results = store.materialize(
            views or (),
            incremental=incremental,
            start=window[0],
            end=window[1],
            on_progress=_bars(progress, "materialize"),
        )
    for result in results:
        unit = "events" if store.repo.view(result.view).spec()["kind"] == "feature_view" else "rows"
        console.print(f"{result.view}: wrote {result.written:,} {unit} to Redis.")
    store.close()


def _bars(progress: Progress, verb: str) -> Callable[[str, int, int], None]:
    """A progress callback ``(name, done, total)`` that shows a bar per name, "<verb> <name>"."""
    tasks: dict[str, TaskID] = {}

    def update(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(f"{verb} {name}", total=total)
        progress.update(tasks[name], completed=done, total=total)

    return update


def ingest(
    sources: Annotated[
        list[str] | None,
        typer.Option("--source", "-s", help="Sources to consume (default: every source with a stream)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Entries read per batch.")] = 500,
    linger: Annotated[
        float,
        typer.Option(
            min=0,
            max=5,
            help="After a batch short of --batch-size, wait until this many seconds have passed since "
            "it was read before reading the next (0: at once). A small batch costs about as much CPU "
            "as a larger one, so at low rates this trades latency for less CPU.",
        ),
    ] = 0.0,
    seconds: Annotated[
        float | None,
        typer.Option(min=0, help="Stop after this many seconds (default: run until interrupted)."),
    ] = None,
    claim_after: Annotated[
        float,
        typer.Option(
            min=0, help="Take over entries another consumer left unacknowledged this many seconds (it died)."
        ),
    ] = 30.0,
    keep_dead_letters: Annotated[
        int,
        typer.Option(
            min=0, help="Dead letters kept per stream, the newest (all are counted; 0 keeps only the counts)."
        ),
    ] = DEAD_LETTER_MAX,
    repo: RepoOption = None,
) -> None:
    """Consume the sources' Redis Streams into the online store and the offline history.

    Several `skewless ingest` processes share the work (one consumer group, which a process
    leaves when it stops, and which live ones clear of processes that died once their entries
    are taken over). Batches are acknowledged after the writes; bad and too-late events go to
    `<stream>:dead` with the reason (see them with `skewless dead-letters`). Entries every
    consumer group has acknowledged are trimmed from the stream once a second. When Redis goes
    away, it waits for it and goes on where it was.

    Every 5 seconds, and when it stops, it prints the events read (and their rate), applied,
    duplicate and dead-lettered, and the lag: entries not yet read.
    """
    store = FeatureStore(settings=Settings.load(repo))
    warn_if_evicting(store.redis)
    ingestor = store.ingestor(
        sources or (),
        batch_size=batch_size,
        claim_idle_ms=int(claim_after * 1000),
        dead_letter_max=keep_dead_letters,
        linger_s=linger,
    )
    stopping = stop_requested()
    started = last_report = time.monotonic()
    streams = ", ".join(str(s.stream) for s, _ in ingestor.sources.values())
    err_console.print(f"Ingesting {streams} as consumer '{ingestor.consumer}' (Ctrl-C to stop).")

    reported = 0  # events at the last report

    def done() -> bool:
        nonlocal last_report, reported
        now = time.monotonic()
        if now - last_report >= 5:
            _report(ingestor, f"{(ingestor.stats.events - reported) / (now - last_report):,.0f}/s")
            last_report, reported = now, ingestor.stats.events
        return stopping() or (seconds is not None and now - started >= seconds)

    ingestor.run(until=done, on_outage=lambda message: err_console.print(message, highlight=False))
    _report(ingestor, f"{ingestor.stats.events / (time.monotonic() - started):,.0f}/s on average")
    store.close()


def _report(ingestor: StreamIngestor, rate: str) -> None:
    """A line of counts so far, with the rate since the last line (``rate``)."""
    stats = ingestor.stats
    try:
        lag = f"{sum(ingestor.lag().values()):,}"
    except OUTAGE_ERRORS:
        lag = "unknown (Redis is unreachable)"
    console.print(
        f"events {stats.events:,} ({rate}) · applied {stats.applied:,} · duplicates {stats.duplicates:,} · "
        f"dead-lettered {stats.dead_lettered:,} · lag {lag}"
    )


def dead_letters(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Streamed sources (default: all of them).")
    ] = None,
    last: Annotated[int, typer.Option(min=0, help="Newest dead letters to show per source.")] = 10,
    repo: RepoOption = None,
) -> None:
    """Show the events `skewless ingest` could not apply: how many, by kind of reason, and the newest.

    Malformed entries, events missing a key or their event time, and events that arrived too
    late are kept in `<stream>:dead` with the reason (the newest `--keep-dead-letters` of them;
    every one is counted).
    """
    store = FeatureStore(settings=Settings.load(repo))
    for name, letters in store.dead_letters(sources or (), last=last).items():
        total = sum(letters.counts.values())
        console.print(
            f"[bold]{name}[/bold] ({letters.stream}:dead): {total:,} dead letter{'' if total == 1 else 's'}, "
            f"{letters.kept:,} kept"
        )
        if letters.counts:
            console.print(_reasons_table(letters.counts))
        if letters.newest:
            console.print(_newest_table(letters.newest))
    store.close()


def _reasons_table(counts: dict[str, int]) -> Table:
    table = Table("reason", box=box.SIMPLE)
    table.add_column("dead letters", justify="right")
    for kind, count in sorted(counts.items(), key=lambda item: -item[1]):
        table.add_row(kind, f"{count:,}")
    return table


def _newest_table(newest: list[DeadLetter]) -> Table:
    table = Table("stream entry", "reason", "event", box=box.SIMPLE, title="newest first")
    for letter in newest:
        event = " ".join(f"{k}={v}" for k, v in letter.fields.items() if v)
        table.add_row(letter.entry, letter.reason, event)
    return table


def compact(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Streamed sources to compact (default: all of them).")
    ] = None,
    settle: Annotated[
        str,
        typer.Option(help="Leave files younger than this alone (ingest may still replace them), e.g. 1m."),
    ] = "1m",
    repo: RepoOption = None,
) -> None:
    """Merge the small files `ingest` lands (one per batch) into few large ones.

    Only files whose entries every consumer group has acknowledged are merged, so safe while
    `ingest` runs; readers see the same events before, during and after, even if it is stopped
    half-way. Run it from `skewless scheduler --compact-every`, or now and then.
    """
    settle_for = parse_duration(settle, what="--settle", allow_zero=True)
    store = FeatureStore(settings=Settings.load(repo))
    with (
        interruptible("Interrupted: readers see the same events; run it again to finish merging."),
        Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err_console
        ) as progress,
    ):
        results = store.compact(sources or (), settle=settle_for, on_file=_bars(progress, "compact"))
    for source, result in results.items():
        console.print(
            f"{source}: {result.files_before:,} landed files → {result.files_after:,} "
            f"({result.merged_events:,} events merged)."
        )
    store.close()
