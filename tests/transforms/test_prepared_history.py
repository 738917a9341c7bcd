"""The prepared history (transforms/prepared.py) is named by everything its content depends on,
is not kept while its history may still change, and never fails a computation it cannot keep.
Its values are held to the oracle in tests/offline/test_batch_matches_oracle.py."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import polars as pl
import pytest

from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import compile_view
from skewless.transforms.prepared import PreparedHistory
from tests import oracle
from tests.offline.test_batch_matches_oracle import MINUTE, T0, _payment, _rows, _view, _write

PLAN = compile_view(_view(90))
EVENTS = [_payment("a", 10, "e1", 5.0, 0), _payment("a", 20, "e2", 7.0, 1)]
ROWS = [("a", 30 * MINUTE)]


def _settle(path: Path, seconds_ago: int = 60) -> None:
    settled_ns = time.time_ns() - seconds_ago * 1_000_000_000
    os.utime(path, ns=(settled_ns, settled_ns))


def _history(tmp_path: Path, events: list[oracle.Event] = EVENTS, *, settled: bool = True) -> Path:
    path = tmp_path / "payments.parquet"
    _write(events, path)
    if settled:
        _settle(path)
    return path


def _compute(tmp_path: Path, rows: list[tuple[str, int]], *, prepare: bool = True) -> pl.DataFrame:
    executor = BatchExecutor(tmp_path, prepare=prepare)
    try:
        return executor.compute(PLAN, _rows(rows))
    finally:
        executor.close()


def _counts(tmp_path: Path) -> tuple[int, int]:
    """Events in the last 10 minutes and in the hour before minute 30."""
    values = _compute(tmp_path, ROWS)
    return values["count_10m"][0], values["amount_count_1h"][0]


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / ".skewless" / "prepared" / PLAN.name).glob("*"))


def test_history_still_being_written_or_just_removed_is_not_kept(tmp_path: Path) -> None:
    history = _history(tmp_path, settled=False)
    assert PreparedHistory.open(tmp_path, PLAN, [history], [], None) is None
    assert PreparedHistory.open(tmp_path, PLAN, [tmp_path / "removed.parquet"], [], None) is None
    _counts(tmp_path)
    assert _entries(tmp_path) == []


def test_a_new_version_of_the_history_or_the_definitions_has_a_new_name(tmp_path: Path) -> None:
    history = _history(tmp_path)
    definitions = tmp_path / "features.py"
    definitions.write_text("RATE = 1.0\n")
    first = PreparedHistory.open(tmp_path, PLAN, [history], [definitions], None)
    assert first == PreparedHistory.open(tmp_path, PLAN, [history], [definitions], None)
    definitions.write_text("RATE = 1.1\n")  # a constant a transform reads
    changed_code = PreparedHistory.open(tmp_path, PLAN, [history], [definitions], None)
    _history(tmp_path, EVENTS[:1])
    changed_data = PreparedHistory.open(tmp_path, PLAN, [history], [definitions], None)
    assert None not in (first, changed_code, changed_data)
    assert len({first, changed_code, changed_data}) == 3


def test_a_rewritten_history_replaces_the_entry_and_its_values(tmp_path: Path) -> None:
    _history(tmp_path)
    assert _counts(tmp_path) == (1, 2)
    [entry] = _entries(tmp_path)
    _history(tmp_path, [*EVENTS, _payment("a", 25, "e3", 1.0, 2)])
    assert _counts(tmp_path) == (2, 3)
    [replacing] = _entries(tmp_path)
    assert replacing != entry  # one entry per view: the old one is gone


def test_an_entry_that_cannot_be_written_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _history(tmp_path)
    (tmp_path / ".skewless").mkdir()
    (tmp_path / ".skewless" / "prepared").write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="skewless.transforms.prepared"):
        assert _counts(tmp_path) == (1, 2)
    assert "prepared history" in caplog.text and "not kept" in caplog.text


def test_an_entry_holds_what_its_rows_reach_and_serves_rows_that_reach_no_further(tmp_path: Path) -> None:
    """With a TTL within the longest window (2 h, tiles of 1 h), a row sees 3 h back: an entry
    starts at the midnight before its earliest row's reach, and rows that reach further back
    need a new one. Every computation equals one without a prepared history."""
    day = 24 * 60
    _history(
        tmp_path, [_payment("a", d * day + m, f"e{d}-{m}", 1.0 + m, d) for d in range(4) for m in (60, 600)]
    )
    entry_days = []
    for rows in (
        [("a", (3 * day + 120) * MINUTE)],
        [("a", (3 * day + 700) * MINUTE)],
        [("a", (day + 700) * MINUTE)],
    ):
        assert _compute(tmp_path, rows).equals(_compute(tmp_path, rows, prepare=False))
        [entry] = _entries(tmp_path)
        entry_days.append((int(entry.name.split("@")[1]) - T0) // (day * MINUTE))
    assert entry_days == [2, 2, 1]  # 3 days + 2 h reach back to day 2; day 1 + 11:40 to day 1
