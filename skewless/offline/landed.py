"""Landed stream events: the files `skewless ingest` writes, which ones readers read, and
merging them.

`ingest` lands every batch it applies as ``data/stream/<source>/<first entry>.parquet`` before
it acknowledges the batch (online/ingest.py): at low rates a file per few events, thousands an
hour, and every offline read lists and opens them all. Compaction merges consecutive files into
one named after the first and last entries it holds, ``<first>~<last>.parquet``. Readers
(``landed_files``) skip any file a merged one covers, so a compaction that stops between writing
the merged file and deleting the originals changes nothing anyone reads, and a rerun finishes
it. Only entries every consumer group has acknowledged are merged: a batch still pending can be
delivered again, and lands again under its own name, which a merged file must not cover.

Files are in arrival order by their entries' positions (``<ms>-<sequence>``, compared as
numbers), which is the order their rows get ``__ord`` in (transforms/batch.py).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from skewless.stores.stream_trim import entry_position

__all__ = ["CompactionResult", "compact_landed", "landed_files"]

Position = tuple[int, int]
#: A merged file holds at most about this many events.
MAX_ROWS = 1_000_000


@dataclass(frozen=True)
class CompactionResult:
    """What a compaction of one source's landed files did."""

    files_before: int
    files_after: int
    merged_events: int


def _span(path: Path) -> tuple[Position, Position] | None:
    """The first and last entry a landed file's name covers (None: not a landed file's name)."""
    first, _, last = path.name.removesuffix(".parquet").partition("~")
    try:
        return entry_position(first.replace("_", "-")), entry_position((last or first).replace("_", "-"))
    except ValueError:
        return None


def _name(position: Position) -> str:
    return f"{position[0]}_{position[1]}"


def landed_files(directory: Path) -> list[Path]:
    """The landed files of ``directory`` that readers read, in arrival order: every file no
    merged file covers (a file with another name comes last, by name)."""
    return _sorted(directory)[0]


def _sorted(directory: Path) -> tuple[list[Path], list[Path]]:
    """The files readers read (``landed_files``), and the files a merged one covers."""
    spans = [(_span(path), path) for path in directory.glob("*.parquet")]
    landed = [(span, path) for span, path in spans if span is not None]
    visible, covered, reach = [], [], (-1, -1)
    # For equal first entries the wider file comes first and covers the narrower.
    for (first, last), path in sorted(landed, key=lambda item: (item[0][0], _negated(item[0][1]))):
        if first > reach:
            visible.append(path)
            reach = last
        else:
            covered.append(path)
            reach = max(reach, last)
    return visible + sorted(path for span, path in spans if span is None), covered


def _negated(position: Position) -> Position:
    return -position[0], -position[1]


@dataclass(frozen=True)
class _Landed:
    path: Path
    frame: pl.DataFrame
    first: Position  # from its name
    last: Position  # the greatest entry it holds


def compact_landed(
    directory: Path,
    *,
    acknowledged_before: Position | None,
    settled_before: float,
    on_file: Callable[[int, int], None] = lambda done, total: None,
) -> CompactionResult:
    """Merge the oldest landed files of ``directory`` whose entries all lie before
    ``acknowledged_before`` (None: no entry can be delivered again) and that were written
    before ``settled_before`` (a time as ``os.stat`` gives it: ``ingest`` may be replacing a
    newer one), into files of about ``MAX_ROWS`` events. ``on_file(done, total)`` follows the
    files read. Files a merged one covers (left by a compaction that stopped) are deleted. One
    merged file's rows are in memory at a time."""
    files, covered = _sorted(directory)
    for path in covered:
        path.unlink(missing_ok=True)
    merged = written = events = 0
    for group in _groups(_eligible(files, acknowledged_before, settled_before, on_file), files):
        target = directory / f"{_name(group[0].first)}~{_name(max(f.last for f in group))}.parquet"
        temporary = target.with_suffix(".tmp")
        pl.concat([f.frame for f in group], how="diagonal_relaxed").write_parquet(temporary)
        os.replace(temporary, target)
        for landed in group:
            if landed.path != target:
                landed.path.unlink(missing_ok=True)
        merged, written = merged + len(group), written + 1
        events += sum(f.frame.height for f in group)
    return CompactionResult(len(files), len(files) - merged + written, events)


def _eligible(
    files: list[Path],
    acknowledged_before: Position | None,
    settled_before: float,
    on_file: Callable[[int, int], None],
) -> Iterator[_Landed]:
    """The leading files that may be merged, with their rows, as they are read: landed (a name
    ``ingest`` gives), settled, and holding only acknowledged entries."""
    for done, path in enumerate(files, 1):
        span = _span(path)
        try:
            if span is None or path.stat().st_mtime >= settled_before:
                break
            frame = pl.read_parquet(path)
        except FileNotFoundError:  # another compaction merged it meanwhile
            break
        entries = frame["__entry"].str.split_exact("-", 1).struct.unnest().cast(pl.Int64)
        last = max(zip(entries["field_0"], entries["field_1"], strict=True), default=span[1])
        if acknowledged_before is not None and last >= acknowledged_before:
            break
        on_file(done, len(files))
        yield _Landed(path, frame, span[0], last)


def _groups(eligible: Iterable[_Landed], files: list[Path]) -> Iterator[list[_Landed]]:
    """Consecutive runs of ``eligible`` of about ``MAX_ROWS`` events, each of two files or more,
    whose last entry comes before the next file's first: a merged file's name must cover no
    file outside it (an entry lands out of order when a claimed batch lands again)."""
    following = {path: _span(after) for path, after in itertools.pairwise(files)}  # the last: none
    current: list[_Landed] = []
    rows, last, closed = 0, (-1, -1), False
    for landed in eligible:
        current.append(landed)
        rows, last = rows + landed.frame.height, max(last, landed.last)
        after = following.get(landed.path)
        closed = after is None or last < after[0]
        if closed and rows >= MAX_ROWS:
            if len(current) > 1:
                yield current
            current, rows, last = [], 0, (-1, -1)
    if closed and len(current) > 1:
        yield current
