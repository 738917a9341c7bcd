"""Materialization on real Redis: Feast's SDK reads the plain views skewless wrote, online values
equal the offline ones at the same time, re-runs do not double count, incremental runs resume."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis
from sqlalchemy import select

from skewless._errors import ConfigError, ExecutionError
from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.feature_store import FeatureStore
from skewless.metadata import open_database
from skewless.metadata.models import MaterializationRun
from skewless.online.consumers import alive, mark_alive, mark_gone
from skewless.online.plain import first_load, plain_rows, plain_view_read, write_plain_rows
from skewless.repo.feast_store import feast_store
from skewless.repo.loader import load_repo
from skewless.repo.plan import apply_plan, make_plan
from skewless.settings import Settings
from skewless.stores.feast_format import encode_entity_keys
from skewless.stores.online_read import execute_reads
from skewless.stores.redis_dump import restores_hashes
from skewless.transforms.compiled import compile_view
from tests.online.keys import kept_forever

SKEWLESS = str(Path(sys.executable).with_name("skewless"))
WINDOWED = [
    "card_activity:count_1h",
    "card_activity:count_24h",
    "card_activity:amount_usd_sum_24h",
    "card_activity:amount_usd_mean_7d",
    "card_activity:amount_usd_max_24h",
    "card_activity:merchant_id_distinct_count_24h",
    "card_activity:amount_usd_last_7d",
]


@pytest.fixture
def store(make_store: Callable[..., FeatureStore]) -> FeatureStore:
    return make_store(events=20_000, cards=200, days=3)


def _cards(store: FeatureStore, n: int = 60) -> list[str]:
    return pl.read_parquet(store.settings.repo / "data" / "transactions.parquet")["card_id"].unique(
        maintain_order=True
    ).head(n).to_list() + ["c999999"]


def _assert_online_equals_offline(store: FeatureStore, features: list[str], at: datetime) -> None:
    cards = _cards(store)
    online = store.get_online_features(features, {"card_id": cards}, at=at)
    offline = store.get_historical_features(
        pl.DataFrame({"card_id": cards, "event_timestamp": [at] * len(cards)}), features, as_available=True
    )
    for name, values in zip(online.names, online.values, strict=True):
        for got, want in zip(values, offline[name].to_list(), strict=True):
            assert (got == pytest.approx(want, rel=1e-9)) if isinstance(want, float) else got == want, name


def test_plain_rows_take_each_entitys_latest_row_and_keep_a_table_of_current_values(
    example_repo: Path,
) -> None:
    plan = compile_view(load_repo(example_repo).views["card_profile"])
    events = pl.DataFrame({
        "card_id": ["a", "b", "a", "a", "a"],
        "__event_us": [5, 1, 5, 3, 5],
        "__ingest_us": [6, 1, 7, 9, 7],
        "__ord": [0, 1, 2, 3, 4],
        "credit_limit": [1.0, 2.0, 3.0, 4.0, 5.0],
    })  # fmt: skip
    latest = plain_rows(plan, events, compare=False).select("card_id", "credit_limit")
    assert sorted(latest.rows()) == [("a", 5.0), ("b", 2.0)]  # event time, then ingest, then arrival
    current = events.slice(0, 2)
    assert plain_rows(plan, current, compare=False).equals(current)


def test_feast_sdk_reads_plain_views_skewless_materialized(store: FeatureStore) -> None:
    database = open_database(store.settings.database_url)
    feast = feast_store(store.settings, str(store.settings.redis_url))
    apply_plan(make_plan(store.repo, database), store.repo, database, feast)
    store.materialize(["card_profile"])
    cards = _cards(store)
    ours = store.get_online_features(
        ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"], {"card_id": cards}
    )
    with contextlib.chdir(store.settings.repo):
        theirs = feast.get_online_features(
            features=["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"],
            entity_rows=[{"card_id": c} for c in cards],
        ).to_dict()
    for name, values in zip(ours.names, ours.values, strict=True):
        assert theirs[name] == values, name
    assert ours.statuses[0][-1] == "NOT_FOUND" and theirs["credit_limit"][-1] is None


def test_a_first_load_restores_hashes_and_keeps_the_fields_of_keys_that_exist(
    example_repo: Path, isolated_redis_url: str
) -> None:
    """A full write into new keys is RESTOREs; a key that exists (another view's fields in
    Feast's entity hash) is written by HSET, found before the run or refused in it."""
    plan = compile_view(load_repo(example_repo).views["card_profile"])
    client = redis.Redis.from_url(isolated_redis_url)
    rows = pl.DataFrame({
        "card_id": [f"c{i:06d}" for i in range(2_500)],
        "credit_limit": [float(i) for i in range(2_500)],
        "country": ["NZ"] * 2_499 + ["a country name longer than one listpack entry holds" * 2],
        "card_type": ["debit"] * 2_500,
        "__event_us": [1_700_000_000_000_000] * 2_500,
    })  # fmt: skip
    keys = encode_entity_keys(rows, plan.join_keys, plan.key_dtypes, "proj").to_pylist()
    client.hset(keys[1_800], "other_view_field", "kept")  # beyond the first batch, which is probed
    assert first_load(client, plan, "proj", rows) == restores_hashes(client)
    assert write_plain_rows(client, plan, "proj", rows, newer_only=False) == 2_500
    client.hset(keys[0], "other_view_field", "kept")
    assert not first_load(client, plan, "proj", rows)  # a second run overwrites by HSET
    assert write_plain_rows(client, plan, "proj", rows, newer_only=False) == 2_500
    read = plain_view_read(plan, "proj", [[c] for c in rows["card_id"]], 1_800_000_000_000_000)
    columns = execute_reads(client, [read])[0]
    assert columns.values["credit_limit"] == rows["credit_limit"].to_list()
    assert columns.values["country"] == rows["country"].to_list()
    assert client.hget(keys[0], "other_view_field") == client.hget(keys[1_800], "other_view_field") == b"kept"


def test_a_redis_user_that_may_not_restore_still_loads_every_row(
    example_repo: Path, no_restore_url: str
) -> None:
    """Managed Redis services and ACLs may forbid RESTORE (and INFO): each refused row is an HSET."""
    plan = compile_view(load_repo(example_repo).views["card_profile"])
    client = redis.Redis.from_url(no_restore_url)
    cards = [f"c-no-restore-{i}" for i in range(2)]  # keys of its own, on the shared database
    rows = pl.DataFrame({
        "card_id": cards, "credit_limit": [1.0, 2.0], "country": ["NZ", "FR"],
        "card_type": ["debit", "credit"], "__event_us": [1_700_000_000_000_000] * 2,
    })  # fmt: skip
    try:
        assert first_load(client, plan, "proj", rows)
        assert write_plain_rows(client, plan, "proj", rows, newer_only=False) == 2
        read = plain_view_read(plan, "proj", [[c] for c in cards], 1_800_000_000_000_000)
        assert execute_reads(client, [read])[0].values["country"] == ["NZ", "FR"]
    finally:
        client.delete(*encode_entity_keys(rows, plan.join_keys, plan.key_dtypes, "proj").to_pylist())


def test_skewless_reads_plain_views_feast_materialized(store: FeatureStore) -> None:
    """skewless writes only Feast's fields and reads the event time from ``_ts``: rows Feast
    wrote are served the same as its own, statuses and event times included."""
    features = ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"]
    cards = {"card_id": _cards(store)}
    store.materialize(["card_profile"])
    ours = store.get_online_features(features, cards)
    store.redis.flushdb()
    database = open_database(store.settings.database_url)
    feast = feast_store(store.settings, str(store.settings.redis_url))
    apply_plan(make_plan(store.repo, database), store.repo, database, feast)
    with contextlib.chdir(store.settings.repo):
        feast.materialize(
            start_date=datetime(2000, 1, 1, tzinfo=UTC),
            end_date=datetime.now(UTC),
            feature_views=["card_profile"],
        )
    assert store.get_online_features(features, cards) == ours


def test_materialized_windows_equal_offline_and_rerun_changes_nothing(store: FeatureStore) -> None:
    store.materialize(["card_activity"])
    at = datetime.now(UTC)
    _assert_online_equals_offline(store, WINDOWED, at)
    card = _cards(store)[0]
    counted = store.batch.events(store.plans["card_activity"], transform=False)
    latest = f"skl:{{card_activity|{card}}}:latest"  # kept twice the view's 7-day TTL
    assert int(store.redis.get(latest)) == counted.filter(pl.col("card_id") == card)["__event_us"].max()  # type: ignore[arg-type]
    assert 0 < store.redis.pttl(latest) <= 14 * 86_400_000
    before = store.get_online_features(WINDOWED, {"card_id": _cards(store)}, at=at)
    # A full run again (e.g. after an interruption); a view named twice is loaded once.
    assert [r.view for r in store.materialize(["card_activity", "card_activity"])] == ["card_activity"]
    assert store.get_online_features(WINDOWED, {"card_id": _cards(store)}, at=at) == before
    assert not kept_forever(store.redis, "card_activity")


def test_incremental_materialize_resumes_from_the_watermark(store: FeatureStore) -> None:
    repo = store.settings.repo
    history = pl.read_parquet(repo / "data" / "transactions.parquet")
    cut = history["ingest_time"].sort()[history.height * 2 // 3]
    history.filter(pl.col("ingest_time") <= cut).write_parquet(repo / "data" / "transactions.parquet")
    first = store.materialize(["card_activity"], incremental=True)[0]
    assert first.watermark_us is not None
    history.write_parquet(repo / "data" / "transactions.parquet")  # new events arrived
    second = store.materialize(["card_activity"], incremental=True)[0]
    assert 0 < second.written < first.written
    store.materialize(["card_activity"], incremental=True)  # nothing new: nothing changes
    _assert_online_equals_offline(store, WINDOWED, datetime.now(UTC))
    assert not kept_forever(store.redis, "card_activity")


PROFILE = ["card_profile:credit_limit", "card_profile:country", "card_profile:card_type"]


def test_a_range_loads_the_latest_row_of_its_events_and_keeps_newer_rows(store: FeatureStore) -> None:
    """docs/semantics.md §9: a plain view answers as if the range held every event it saw, and
    a range never overwrites a newer stored row."""
    profiles = pl.read_parquet(store.settings.repo / "data" / "card_profiles.parquet")
    times = profiles["updated_at"].sort()
    start, end = times[profiles.height // 4], times[profiles.height * 3 // 4]
    cards = {"card_id": _cards(store)}
    store.materialize(["card_profile"], start=start, end=end)
    in_range = profiles.filter(pl.col("updated_at").is_between(start, end)).sort("updated_at")
    latest = in_range.group_by("card_id", maintain_order=True).last()
    online = store.get_online_features(PROFILE, cards, at=end)
    expected = pl.DataFrame(cards).join(latest, on="card_id", how="left", maintain_order="left")
    assert online.values == [expected[c].to_list() for c in ("credit_limit", "country", "card_type")]
    found = set(latest["card_id"])
    assert [s for s, card in zip(online.statuses[0], cards["card_id"], strict=True) if card not in found] == [
        "NOT_FOUND"
    ] * len(set(cards["card_id"]) - found)  # nothing in the range: not loaded

    store.materialize(["card_profile"])  # every row: each card's latest
    current = store.get_online_features(PROFILE, cards)
    store.materialize(["card_profile"], end=end)  # older rows only: nothing changes
    assert store.get_online_features(PROFILE, cards) == current


def test_a_range_replaces_windowed_state_with_its_events_and_drops_the_watermark(
    store: FeatureStore,
) -> None:
    """A windowed view's state holds the range's events only: it equals the offline executor's
    values over a history that ends where the range does. Its watermark no longer holds, so
    the next incremental run is a full one; a plain view's stays."""
    store.materialize(incremental=True)
    end = datetime.now(UTC) - timedelta(days=1)
    runs = store.materialize(["card_activity", "card_profile"], start=end - timedelta(days=30), end=end)
    assert [r.watermark_us for r in runs] == [None, None]
    assert store._watermark("card_activity") is None and store._watermark("card_profile") is not None
    history = store.settings.repo / "data" / "transactions.parquet"
    pl.read_parquet(history).filter(pl.col("event_time") <= end).write_parquet(history)
    _assert_online_equals_offline(store, WINDOWED, datetime.now(UTC))
    with store.database.session() as session:
        run = session.scalars(select(MaterializationRun).order_by(MaterializationRun.id.desc())).first()
        assert run is not None and (run.mode, run.end) == ("range", end)


def test_a_range_that_would_cut_windows_short_is_refused_before_anything_is_written(
    store: FeatureStore,
) -> None:
    start = datetime.now(UTC) - timedelta(days=7)  # card_activity's longest window is 7 days
    with pytest.raises(ConfigError, match=r"cut the windows of view 'card_activity' short.*start at 20\d\d-"):
        store.materialize(["card_profile", "card_activity"], start=start)
    assert store.redis.dbsize() == 0
    store.materialize(["card_profile"], start=start)  # a plain view has no windows
    assert store.redis.dbsize() > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"incremental": True, "end": datetime(2026, 1, 1, tzinfo=UTC)}, "takes no start or end"),
        ({"start": datetime(2026, 1, 1)}, "start 2026-01-01T00:00:00 is not a datetime with a time zone"),
        ({"end": "2026-01-01"}, "end '2026-01-01' is not a datetime with a time zone"),  # was AttributeError
        ({"start": datetime(2026, 2, 1, tzinfo=UTC), "end": datetime(2026, 1, 1, tzinfo=UTC)}, "swap them"),
    ],
)
def test_a_bad_range_is_refused_with_the_fix(
    store: FeatureStore, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        store.materialize(["card_profile"], **options)


def test_an_online_read_as_of_a_time_without_a_zone_is_refused(store: FeatureStore) -> None:
    """``at`` failed with Python's TypeError (naive and aware times cannot be subtracted)."""
    for at in (datetime(2026, 1, 1), "2026-01-01"):
        with pytest.raises(ConfigError, match="^at .* is not a datetime with a time zone; pass a UTC time"):
            store.get_online_features(["card_profile:country"], {"card_id": ["c000001"]}, at=at)  # type: ignore[arg-type]


def test_a_full_run_does_not_clear_a_windowed_view_while_ingest_writes_it(store: FeatureStore) -> None:
    """A running `skewless ingest` marks itself alive; a full run of a view it writes would lose
    its writes, so it is refused until ingest stops (an incremental run is not)."""
    ingestor = store.ingestor()
    ingestor.step()
    assert alive(store.redis, "transactions") == [ingestor.consumer]
    keys = set(store.redis.keys())
    for incremental in (False, True):  # without a watermark, an incremental run is a full one
        with pytest.raises(ConfigError, match=r"skewless ingest \(.+\) is applying stream 'transactions'"):
            store.materialize(["card_profile", "card_activity"], incremental=incremental)
    assert set(store.redis.keys()) == keys  # nothing was written, not even the plain view
    ingestor.close()  # as `skewless ingest` does when it stops
    assert alive(store.redis, "transactions") == []
    store.materialize(["card_activity"])
    ingestor.step()
    store.materialize(["card_activity"], incremental=True)  # replays are safe beside ingest
    ingestor.run(until=lambda: True)
    assert alive(store.redis, "transactions") == []  # run() says it stopped when it returns


def test_consumers_are_alive_while_they_mark_themselves(store: FeatureStore) -> None:
    mark_alive(store.redis, "s", "a")
    mark_alive(store.redis, "s", "b")
    mark_gone(store.redis, "s", "b")
    store.redis.zadd("s:consumers", {"died": 1})  # marked long ago: a process that died
    assert alive(store.redis, "s") == ["a"]


def test_a_full_run_of_a_plain_view_keeps_newer_rows_ingest_wrote(
    make_store: Callable[..., FeatureStore],
) -> None:
    """With a stream on the plain view's source, ingest writes a row online and lands it offline
    after; a full run that read the history in between must not put an older row back."""
    settings = make_store(events=2_000, cards=20, days=2).settings
    fraud = settings.repo / "fraud.py"
    streamed = 'path="data/card_profiles.parquet", stream="card_profiles",'
    fraud.write_text(fraud.read_text().replace('path="data/card_profiles.parquet",', streamed))
    env = {"REDIS_URL": str(settings.redis_url), "SKEWLESS_DATABASE_URL": settings.database_url}
    store = FeatureStore(settings=Settings.load(settings.repo, env=env))
    repo = settings.repo
    card = _cards(store, 1)[0]
    now = datetime.now(UTC)
    store.push(
        "card_profiles", [{"card_id": card, "credit_limit": 123.0, "country": "NZ", "updated_at": now}]
    )
    ingestor = store.ingestor(["card_profiles"])
    ingestor.step()
    shutil.rmtree(repo / "data" / "stream")  # as if the run read the history before it landed
    store.materialize(["card_profile"])
    online = store.get_online_features(PROFILE, {"card_id": [card]})
    assert [v[0] for v in online.values] == [123.0, "NZ", None]


def test_materialize_cli_shows_what_it_wrote_and_refuses_a_bad_range(
    store: FeatureStore, isolated_redis_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": isolated_redis_url,
        "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
    }

    def materialize(*args: str) -> subprocess.CompletedProcess[str]:
        command = [SKEWLESS, "materialize", *args, "--repo", str(store.settings.repo)]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    result = materialize("card_profile")
    assert result.returncode == 0, result.stderr
    assert "card_profile: wrote 200 rows to Redis." in result.stdout
    refused = materialize("--start", f"{datetime.now(UTC) - timedelta(days=1):%Y-%m-%d}")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "would cut the windows of view" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_ctrl_c_says_what_to_do_and_records_the_run_as_interrupted(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    write_example_data(example_repo / "data", FraudDataSpec(events=300_000, cards=2_000, days=2))
    database = tmp_path / "m.db"
    env = {**os.environ, "REDIS_URL": isolated_redis_url, "SKEWLESS_DATABASE_URL": f"sqlite:///{database}"}
    command = [SKEWLESS, "materialize", "card_activity", "--repo", str(example_repo)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running() -> bool:
        with (
            contextlib.suppress(sqlite3.OperationalError),
            contextlib.closing(sqlite3.connect(database)) as db,
        ):
            return bool(
                db.execute("SELECT count(*) FROM materialization_runs WHERE status = 'running'").fetchone()[0]
            )
        return False

    deadline = time.monotonic() + 60
    while not running():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert "Interrupted: the view being loaded may be partly written in Redis" in " ".join(stderr.split())
    with contextlib.closing(sqlite3.connect(database)) as db:
        ((status, error),) = db.execute("SELECT status, error FROM materialization_runs").fetchall()
    # Ctrl-C in Python is "interrupted"; inside a DuckDB query, DuckDB's "Query interrupted".
    assert status == "failed" and "interrupted" in error.lower()


def test_each_run_is_recorded_with_its_rows_or_its_error(
    example_repo: Path, isolated_redis_url: str, database_url: str
) -> None:
    _assert_runs_recorded(example_repo, isolated_redis_url, database_url)


def test_an_in_memory_metadata_database_records_runs_too(example_repo: Path, isolated_redis_url: str) -> None:
    """The "running" row is written from a thread: one in-memory database for every thread."""
    _assert_runs_recorded(example_repo, isolated_redis_url, "sqlite://")


def _assert_runs_recorded(example_repo: Path, isolated_redis_url: str, database_url: str) -> None:
    write_example_data(example_repo / "data", FraudDataSpec(events=2_000, cards=20, days=2))
    env = {"REDIS_URL": isolated_redis_url, "SKEWLESS_DATABASE_URL": database_url}
    store = FeatureStore(settings=Settings.load(example_repo, env=env))
    written = store.materialize(["card_profile"])[0].written

    def interrupt(view: str, done: int, total: int) -> None:
        raise KeyboardInterrupt  # Ctrl-C in the middle of the writes

    with pytest.raises(KeyboardInterrupt):
        store.materialize(["card_profile"], on_progress=interrupt)
    (example_repo / "data" / "transactions.parquet").unlink()
    with pytest.raises(ExecutionError, match="no history"):
        store.materialize(["card_activity"])
    with store.database.session() as session:
        runs = session.scalars(select(MaterializationRun).order_by(MaterializationRun.id)).all()
        recorded = [(r.view, r.status, r.rows_written, r.finished_at is not None) for r in runs]
        errors = [r.error for r in runs]
    store.close()
    assert recorded == [
        ("card_profile", "succeeded", written, True),
        ("card_profile", "failed", 0, True),
        ("card_activity", "failed", 0, True),
    ]
    assert errors[:2] == [None, "interrupted"] and "no history" in str(errors[2])
