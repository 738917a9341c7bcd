"""Landed stream files (offline/landed.py): read in arrival order, merged without changing what
any reader sees — interrupted or not, with or without event ids — and never merged while an
entry may still be delivered again."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import polars as pl
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skewless import Aggregation, EventSource, FeatureView
from skewless.offline import landed as landed_module
from skewless.offline.landed import compact_landed, landed_files
from skewless.stores.stream_trim import first_needed
from skewless.transforms.batch import BatchExecutor
from skewless.transforms.compiled import ViewPlan, compile_view
from tests import oracle
from tests.offline.test_batch_matches_oracle import MINUTE, _frame, _rows, account, event_sets, source

ANONYMOUS = dataclasses.replace(
    source,
    stream="payments",
    event_id=None,
    schema={k: v for k, v in source.columns.items() if k != "event_id"},
)
WITH_IDS = dataclasses.replace(source, stream="payments")


def _plan(events_source: EventSource) -> ViewPlan:
    aggregations = [Aggregation("count", window="1h"), Aggregation("sum", "amount", window="2h")]
    view = FeatureView(name="v", entities=[account], source=events_source, aggregations=aggregations)
    return compile_view(view)


def _land(directory: Path, events: list[oracle.Event], events_source: EventSource, per_file: int) -> None:
    """``events`` as `ingest` lands them: files of ``per_file`` entries, in one millisecond (so
    sequences pass 9, where names sort differently as text), named by their first entry."""
    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(events), per_file):
        batch = events[start : start + per_file]
        entries = pl.Series("__entry", [f"1000-{start + i}" for i in range(len(batch))], pl.String)
        frame = _frame(batch).with_columns(entries).select(*events_source.columns, "__entry")
        frame.write_parquet(directory / f"1000_{start}.parquet")


def _read(repo: Path, events_source: EventSource) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What the batch executor reads, and computes for a few rows."""
    executor = BatchExecutor(repo, prepare=False)
    plan = _plan(events_source)
    try:
        events = executor.events(plan).drop("__ord")  # positions renumber; their order stays
        rows = _rows([(key, t * MINUTE) for key in ("a", "b") for t in (30, 120, 240)])
        return events, executor.compute(plan, rows)
    finally:
        executor.close()


def test_files_are_read_in_arrival_order_and_a_merged_one_hides_what_it_covers(tmp_path: Path) -> None:
    for name in ("1000_10", "999_3", "1000_9", "extra"):
        pl.DataFrame({"x": [1]}).write_parquet(tmp_path / f"{name}.parquet")
    assert [p.stem for p in landed_files(tmp_path)] == ["999_3", "1000_9", "1000_10", "extra"]
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "999_3~1000_9.parquet")
    assert [p.stem for p in landed_files(tmp_path)] == ["999_3~1000_9", "1000_10", "extra"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=event_sets(),
    per_file=st.integers(1, 7),
    events_source=st.sampled_from([WITH_IDS, ANONYMOUS]),
    interrupted=st.booleans(),
)
def test_compaction_changes_nothing_readers_see(
    tmp_path: Path, events: list[oracle.Event], per_file: int, events_source: EventSource, interrupted: bool
) -> None:
    repo = tmp_path / "repo"
    shutil.rmtree(repo, ignore_errors=True)  # tmp_path is shared by the examples
    landed = repo / events_source.stream_history
    _land(landed, events, events_source, per_file)
    if not events:
        return
    before = _read(repo, events_source)
    originals = {path.name: path.read_bytes() for path in landed.iterdir()}
    result = compact_landed(landed, acknowledged_before=None, settled_before=time.time() + 1)
    assert result.files_after == (1 if len(originals) > 1 else len(originals))
    if interrupted:  # stopped after writing the merged file, before deleting the originals
        for name, content in originals.items():
            (landed / name).write_bytes(content)
    after = _read(repo, events_source)
    assert after[0].equals(before[0]) and after[1].equals(before[1])
    if interrupted:  # and the next run finishes it
        compact_landed(landed, acknowledged_before=None, settled_before=time.time() + 1)
        assert len(list(landed.iterdir())) == 1


def test_a_source_with_nothing_landed_compacts_to_nothing(tmp_path: Path) -> None:
    for directory in (tmp_path, tmp_path / "never-created"):
        result = compact_landed(directory, acknowledged_before=None, settled_before=time.time())
        assert (result.files_before, result.files_after, result.merged_events) == (0, 0, 0)


def test_entries_that_may_be_delivered_again_and_young_files_are_left(tmp_path: Path) -> None:
    events = [oracle.Event("a", MINUTE * i, MINUTE * i, f"e{i}", {"amount": 1.0, "units": 1, "shop": "s"}, i) for i in range(20)]  # fmt: skip
    _land(tmp_path, events, WITH_IDS, 5)  # 1000_0, 1000_5, 1000_10, 1000_15
    young = compact_landed(tmp_path, acknowledged_before=None, settled_before=time.time() - 60)
    assert (young.files_after, young.merged_events) == (4, 0)
    pending = compact_landed(tmp_path, acknowledged_before=(1000, 12), settled_before=time.time() + 1)
    assert [p.stem for p in landed_files(tmp_path)] == ["1000_0~1000_9", "1000_10", "1000_15"]
    assert pending.merged_events == 10


def test_files_whose_entries_reach_past_the_next_are_not_merged_without_it(tmp_path: Path) -> None:
    """A claimed batch can land with entries after the next file's first: merging it without
    that file would make the merged name cover, and hide, the next file."""
    for name, entries in {
        "1000_0": ["1000-0"],
        "1000_1": ["1000-1", "1000-30"],
        "1000_5": ["1000-5", "1000-50"],
    }.items():
        pl.DataFrame({"__entry": entries}).write_parquet(tmp_path / f"{name}.parquet")
    # 1000_0 and 1000_1 are acknowledged, 1000_5 not; merged alone they would hide it.
    kept = compact_landed(tmp_path, acknowledged_before=(1000, 40), settled_before=time.time() + 1)
    assert kept.merged_events == 0
    merged = compact_landed(tmp_path, acknowledged_before=None, settled_before=time.time() + 1)
    assert [p.stem for p in landed_files(tmp_path)] == ["1000_0~1000_50"]
    assert merged.merged_events == 5


def test_the_first_entry_a_group_may_still_be_given(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url)
    assert first_needed(client, "missing") is None
    ids = [client.xadd("s", {"n": i}) for i in range(3)]
    assert first_needed(client, "s") is None  # no group: nobody is given anything
    client.xgroup_create("s", "g", id="0")
    client.xreadgroup("g", "c", {"s": ">"}, count=2)
    assert first_needed(client, "s") == ids[0]  # pending
    client.xack("s", "g", ids[0])
    assert first_needed(client, "s") == ids[1]
    client.xack("s", "g", ids[1])
    assert first_needed(client, "s") == ids[1]  # none pending: the last given, and after


def test_a_long_run_is_merged_into_files_of_about_max_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(landed_module, "MAX_ROWS", 4)
    events = [oracle.Event("a", MINUTE * i, MINUTE * i, f"e{i}", {"amount": 1.0, "units": 1, "shop": "s"}, i) for i in range(20)]  # fmt: skip
    repo = tmp_path / "repo"
    _land(repo / WITH_IDS.stream_history, events, WITH_IDS, 2)
    before = _read(repo, WITH_IDS)
    result = compact_landed(
        repo / WITH_IDS.stream_history, acknowledged_before=None, settled_before=time.time() + 1
    )
    assert (result.files_before, result.files_after, result.merged_events) == (10, 5, 20)
    stems = [p.stem for p in landed_files(repo / WITH_IDS.stream_history)]
    assert stems == [f"1000_{i}~1000_{i + 3}" for i in range(0, 20, 4)]
    after = _read(repo, WITH_IDS)
    assert after[0].equals(before[0]) and after[1].equals(before[1])
