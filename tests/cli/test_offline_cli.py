"""``skewless training-set``, ``skewless backfill`` and ``skewless compact`` as users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select

from skewless._errors import ExecutionError
from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.feature_store import FeatureStore
from skewless.metadata import open_database
from skewless.metadata.models import MaterializationRun, TrainingDataset
from skewless.offline.training_set import read_entities
from skewless.settings import Settings

SKEWLESS = str(Path(sys.executable).with_name("skewless"))


def _run(repo: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKEWLESS_DATABASE_URL": db}
    return subprocess.run(
        [SKEWLESS, *args, "--repo", str(repo)], env=env, capture_output=True, text=True, timeout=300
    )


def test_training_set_from_csv_is_written_and_recorded(
    example_repo: Path, sqlite_url: str, tmp_path: Path
) -> None:
    write_example_data(
        example_repo / "data", FraudDataSpec(events=5_000, cards=100, end=datetime(2026, 11, 1, tzinfo=UTC))
    )
    entities = tmp_path / "entities.csv"
    entities.write_text(
        "card_id,event_timestamp\nc000001,2026-10-30T12:00:00Z\nc000002,2026-10-31T08:30:00Z\n"
    )
    out = tmp_path / "train.parquet"
    result = _run(
        example_repo,
        sqlite_url,
        "training-set",
        "--entities",
        str(entities),
        "-f",
        "card_activity:count_24h",
        "-f",
        "card_profile:country",
        "--out",
        str(out),
        "--as-available",
    )
    assert result.returncode == 0, result.stderr
    assert "Wrote 2 rows" in result.stdout
    frame = pl.read_parquet(out)
    assert frame.columns == ["card_id", "event_timestamp", "count_24h", "country"]
    database = open_database(sqlite_url)
    with database.session() as session:
        row = session.scalars(select(TrainingDataset)).one()
    assert row.features == ["card_activity:count_24h", "card_profile:country"]
    assert set(row.definition_versions) == {"card_activity", "card_profile"}
    assert (row.entity_rows, row.as_available, row.output_path) == (2, True, str(out.resolve()))
    assert row.start == datetime(2026, 10, 30, 12, tzinfo=UTC) and row.end == datetime(
        2026, 10, 31, 8, 30, tzinfo=UTC
    )


def test_training_set_of_a_feature_service(example_repo: Path, sqlite_url: str, tmp_path: Path) -> None:
    write_example_data(
        example_repo / "data", FraudDataSpec(events=2_000, cards=20, end=datetime(2026, 11, 1, tzinfo=UTC))
    )
    entities = tmp_path / "entities.csv"
    entities.write_text("card_id,event_timestamp\nc000001,2026-10-30T12:00:00Z\n")
    args = ["training-set", "--entities", str(entities), "--out", str(tmp_path / "t.parquet")]
    result = _run(example_repo, sqlite_url, *args, "--feature-service", "fraud_model")
    assert result.returncode == 0, result.stderr
    frame = pl.read_parquet(tmp_path / "t.parquet")
    assert frame.columns[-2:] == ["credit_limit", "country"] and "count_24h" in frame.columns
    both = _run(example_repo, sqlite_url, *args, "-s", "fraud_model", "-f", "card_profile:country")
    assert both.returncode == 1 and "not both" in both.stderr and len(both.stderr.strip().splitlines()) == 1


def _small_training_set(
    repo: Path, db: str, tmp_path: Path, row: str, feature: str, out: Path
) -> subprocess.CompletedProcess[str]:
    """``skewless training-set`` of ``feature`` over a small example history, for one entity
    row (CSV: card, timestamp)."""
    write_example_data(repo / "data", FraudDataSpec(events=1_000, cards=10))
    entities = tmp_path / "entities.csv"
    entities.write_text(f"card_id,event_timestamp\n{row}\n")
    return _run(repo, db, "training-set", "--entities", str(entities), "-f", feature, "--out", str(out))


def test_csv_timestamps_without_a_zone_are_refused_in_one_line_naming_one(
    example_repo: Path, sqlite_url: str, tmp_path: Path
) -> None:
    row, feature = "c000001,2026-10-30T12:00:00", "card_activity:count_24h"
    result = _small_training_set(example_repo, sqlite_url, tmp_path, row, feature, tmp_path / "o.csv")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert (
        "'event_timestamp' holds '2026-10-30 12:00:00.000000', not an ISO 8601 time with a zone"
        in result.stderr
    )


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ("c1,2026-10-30T12:00:00Z\nc2,2026-10-31", "'2026-10-31'"),  # a date among times
        ("c1,yesterday", "'yesterday'"),
    ],
)
def test_a_csv_time_that_is_not_iso_with_a_zone_is_named(tmp_path: Path, rows: str, named: str) -> None:
    entities = tmp_path / "e.csv"
    entities.write_text(f"card_id,event_timestamp\n{rows}\n")
    with pytest.raises(ExecutionError, match=f"'event_timestamp' holds {named}, not an ISO 8601 time"):
        read_entities(entities, {"card_id": pl.String()}, "event_timestamp")


def test_csv_join_keys_are_read_as_declared_and_zoned_times_in_any_iso_form(tmp_path: Path) -> None:
    """Guessed, the card 000123 was the number 123 (refused: "cast the column", which a CSV's user
    cannot do), and times in two ISO forms stayed text."""
    entities = tmp_path / "e.csv"
    entities.write_text("card_id,event_timestamp\n000123,2026-10-30 12:00:00Z\n7,2026-10-30T14:00:00+02:00\n")
    frame = read_entities(entities, {"card_id": pl.String()}, "event_timestamp")
    assert frame["card_id"].to_list() == ["000123", "7"]
    assert frame["event_timestamp"].to_list() == [datetime(2026, 10, 30, 12, tzinfo=UTC)] * 2


def test_a_training_set_it_could_not_write_or_record_is_refused_before_the_work(
    example_repo: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """An output of another kind was refused after the features were computed; a name too long
    for the metadata DB failed in PostgreSQL once the file was written."""
    store = FeatureStore(settings=Settings.load(example_repo, env={"SKEWLESS_DATABASE_URL": sqlite_url}))
    with pytest.raises(ExecutionError, match=r"output .*t\.json: use \.parquet or \.csv"):
        store.create_training_set(None, ["card_activity:count_1h"], tmp_path / "t.json")
    with pytest.raises(ExecutionError, match="training set name 'nnnnnnnnnnnnnnnnnnnn…' has 201 characters"):
        store.create_training_set(None, ["card_activity:count_1h"], tmp_path / "t.csv", name="n" * 201)
    assert not list(tmp_path.glob("t.*"))


def test_backfill_writes_partitions_and_records_the_run(example_repo: Path, sqlite_url: str) -> None:
    write_example_data(
        example_repo / "data",
        FraudDataSpec(events=5_000, cards=100, days=3, end=datetime(2026, 11, 1, tzinfo=UTC)),
    )
    result = _run(
        example_repo,
        sqlite_url,
        "backfill",
        "merchant_activity",
        "--start",
        "2026-10-30",
        "--end",
        "2026-11-01",
    )
    assert result.returncode == 0, result.stderr
    assert "merchant_activity: wrote" in result.stdout and "in 2 daily partitions" in result.stdout
    partitions = sorted(p.name for p in (example_repo / "data" / "offline" / "merchant_activity").iterdir())
    assert partitions == ["date=2026-10-30", "date=2026-10-31"]
    database = open_database(sqlite_url)
    with database.session() as session:
        run = session.scalars(select(MaterializationRun)).one()
    assert (run.view, run.target, run.status) == ("merchant_activity", "offline", "succeeded")
    assert run.rows_written == sum(
        pl.read_parquet(example_repo / "data" / "offline" / "merchant_activity" / p / "data.parquet").height
        for p in partitions
    )


def test_bad_date_is_one_line(example_repo: Path, sqlite_url: str) -> None:
    result = _run(example_repo, sqlite_url, "backfill", "--start", "yesterday")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: --start 'yesterday' is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T12:00Z."
    )
    swapped = _run(example_repo, sqlite_url, "backfill", "--start", "2026-11-20", "--end", "2026-11-10")
    assert swapped.returncode == 1 and swapped.stderr.strip() == (
        "error: start 2026-11-20T00:00:00+00:00 is after end 2026-11-10T00:00:00+00:00; swap them."
    )
    # A plain view named on its own printed nothing and exited 0.
    plain = _run(example_repo, sqlite_url, "backfill", "card_profile")
    assert plain.returncode == 1 and plain.stderr.strip() == (
        "error: 'card_profile' is a plain view: its rows are its source's, with nothing to backfill; "
        "name feature views (card_activity, merchant_activity)."
    )


def test_compact_merges_landed_files_and_names_unknown_sources(
    example_repo: Path, sqlite_url: str, isolated_redis_url: str
) -> None:
    landed = example_repo / "data" / "stream" / "transactions"
    landed.mkdir(parents=True)
    at = datetime(2026, 11, 1, tzinfo=UTC)
    for first in (0, 2, 4):
        pl.DataFrame(
            {
                "event_id": [f"e{first}", f"e{first + 1}"],
                "card_id": ["c000001", "c000002"],
                "merchant_id": ["m1", "m2"],
                "amount": [1.0, 2.0],
                "currency": ["USD", "EUR"],
                "event_time": [at, at],
                "ingest_time": [at, at],
                "__entry": [f"1000-{first}", f"1000-{first + 1}"],
            }
        ).write_parquet(landed / f"1000_{first}.parquet")
    env = {**os.environ, "SKEWLESS_DATABASE_URL": sqlite_url, "REDIS_URL": isolated_redis_url}

    def compact(*args: str) -> subprocess.CompletedProcess[str]:
        command = [SKEWLESS, "compact", *args, "--settle", "0s", "--repo", str(example_repo)]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    result = compact()
    assert result.returncode == 0, result.stderr
    assert "transactions: 3 landed files → 1 (6 events merged)." in result.stdout
    assert [p.name for p in landed.iterdir()] == ["1000_0~1000_5.parquet"]
    unknown = compact("card_profiles")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: No stream for source(s) card_profiles; streamed sources: transactions."
    ]


def test_an_output_path_that_cannot_be_written_is_one_line(
    example_repo: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """Before: "internal error: FileExistsError … please report it"."""
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "train.parquet"  # its directory is a file
    row, feature = "c000001,2026-10-30T12:00:00Z", "card_profile:country"
    result = _small_training_set(example_repo, sqlite_url, tmp_path, row, feature, out)
    assert result.returncode == 1
    assert " ".join(result.stderr.split()) == (
        f"error: File exists ({tmp_path / 'a_file'}); check the path, its permissions and the free disk space."
    )
