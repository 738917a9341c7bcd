"""Prepared history: a windowed view's counted, transformed and ranked events, and the tiles
built from them, kept on disk so that the next training set over the same history starts there.

Preparing the example's 1M events (reading, first copies, the transform, ranks) and building
their day tiles took 0.45-0.6 s of a 1.7-2 s training set (2026-11-29); reading them back,
memory-mapped, takes 0.03 s.

An entry is named by everything its content depends on (``PreparedHistory.open``): the view's
definition version, the text of the repo's Python files (a constant a transform reads is part of
its meaning), the versions of skewless (and of what an entry holds, ``_REVISION``), polars and
DuckDB, and each history file's path, size, modification time and inode. File times are coarse
— a rewrite within one clock tick can keep them — so history with a file modified in the last
``SETTLE_SECONDS`` is not prepared on disk: it is still being written, and the name could not
tell its versions apart.

An entry holds the events from a UTC midnight on (or all of them): those the training set that
wrote it could see, since events before its earliest row's reach never matter
(``batch_sql.history_reach_us``). A later training set uses it if its rows reach no further
back, so an entry never costs more memory than the training set that wrote it; one that reaches
further back writes a new entry. Each view keeps one entry; writing to a new one removes the
others. An entry that cannot be written is skipped, with a warning: it only saves time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from skewless._version import __version__
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.versioning import content_version

__all__ = ["SETTLE_SECONDS", "PreparedHistory"]

#: History files modified more recently than this are not trusted to a name (see above).
SETTLE_SECONDS = 2.0
#: What a prepared history holds, revised with the semantics it bakes in (2: a NaN or infinite
#: float input is null, §5): an entry of an earlier revision is never read.
_REVISION = 2
_DAY_US = 86_400_000_000

_log = logging.getLogger(__name__)


def _history_name(plan: ViewPlan, files: Sequence[Path], definitions: Sequence[Path]) -> str | None:
    """The entry's name for ``plan`` over ``files``, or None while one of them may still change
    (or was just removed)."""
    settled = time.time() - SETTLE_SECONDS
    stats = []
    for path in files:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        if stat.st_mtime > settled:
            return None
        stats.append([str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino])
    code = [hashlib.sha256(path.read_bytes()).hexdigest() for path in definitions]
    versions = [plan.version, __version__, _REVISION, pl.__version__, duckdb.__version__]
    return content_version({"versions": versions, "files": stats, "code": code})


@dataclass(frozen=True)
class PreparedHistory:
    """One view's entry: parts (Arrow IPC files) by name, in ``directory``, built from the
    events of event time ``since_us`` on (None: all)."""

    directory: Path
    since_us: int | None

    @classmethod
    def open(
        cls,
        root: Path,
        plan: ViewPlan,
        files: Sequence[Path],
        definitions: Sequence[Path],
        since_us: int | None,
    ) -> PreparedHistory | None:
        """The entry under ``root`` for ``plan`` over the history ``files``, given the repo's
        ``definitions``, that holds every event from ``since_us`` on (None: all): the kept one
        if it starts no later, else a new one from that day's midnight. None when the history
        is still being written."""
        name = _history_name(plan, files, definitions)
        if name is None:
            return None
        view = root / plan.name
        for directory in view.glob(f"{name}@*") if view.is_dir() else []:
            start = directory.name.split("@")[1]
            if start == "all" or (since_us is not None and int(start) <= since_us):
                return cls(directory, None if start == "all" else int(start))
        start_us = None if since_us is None else since_us - since_us % _DAY_US
        return cls(view / f"{name}@{'all' if start_us is None else start_us}", start_us)

    def read(self, part: str) -> pa.Table | None:
        """The part, memory-mapped (no copy), or None if it was not written (or cannot be read)."""
        try:
            return pa.ipc.open_file(pa.memory_map(str(self.directory / f"{part}.arrow"))).read_all()
        except (OSError, pa.ArrowInvalid):  # not written, or not readable: prepared again
            return None

    def write(self, part: str, table: pa.Table) -> None:
        """Keep ``table`` as the part; the view's other entries are removed. Atomic: a reader
        sees the whole part or none."""
        temporary = self.directory / f".{part}.{uuid.uuid4().hex}.tmp"  # one per writer
        try:
            self._clear_others()
            self.directory.mkdir(parents=True, exist_ok=True)
            with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            os.replace(temporary, self.directory / f"{part}.arrow")
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)  # a disk that filled up gets its space back
            _log.warning(
                "prepared history of %s not kept (%s); training sets will prepare it again",
                self.directory,
                exc,
            )

    def _clear_others(self) -> None:
        if self.directory.parent.is_dir():
            for other in self.directory.parent.iterdir():
                if other != self.directory:
                    shutil.rmtree(other, ignore_errors=True)
