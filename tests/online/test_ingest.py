"""Streaming ingestion on real Redis: events reach the online store and the offline history,
bad ones are dead-lettered with a reason, and killing `skewless ingest` loses and double-counts
nothing (real processes)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import redis

from skewless import DefinitionError, ExecutionError, TransformError
from skewless.feature_store import FeatureStore
from skewless.online.dead_letters import dead_letter_stream
from skewless.online.ingest import GROUP
from skewless.online.push import push_events
from skewless.settings import Settings
from skewless.stores.stream_trim import entry_position, trim_acknowledged
from tests.online.keys import kept_forever
from tests.online.test_stream_entries import SOURCE as MIXED_SOURCE
from tests.service.processes import fill_redis, free_port, redis_server, wait_until

SKEWLESS = str(Path(sys.executable).with_name("skewless"))
FEATURES = [
    "card_activity:count_24h",
    "card_activity:amount_usd_sum_24h",
    "card_activity:merchant_id_distinct_count_24h",
    "card_activity:amount_usd_last_7d",
]


def _env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The settings a test's store and its `skewless` processes share."""
    return {"REDIS_URL": redis_url, "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}


def _store(repo: Path, redis_url: str, tmp_path: Path) -> FeatureStore:
    return FeatureStore(settings=Settings.load(repo, env=_env(redis_url, tmp_path)))


def _events(count: int, *, seed: int = 1) -> pl.DataFrame:
    """Recent card transactions, with every tenth one sent twice (same id and time)."""
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": f"t{seed}-{i}",
            "card_id": f"c{i % 17:06d}",
            "merchant_id": f"m{i % 5:05d}",
            "amount": round(10 + i % 90 * 1.25, 2),
            "currency": ("USD", "EUR", "GBP")[i % 3],
            "event_time": now - timedelta(minutes=i % 50, seconds=i % 60),
        }
        for i in range(count)
    ]
    return pl.DataFrame(rows + rows[::10])


def _drained(store: FeatureStore) -> bool:
    """Every entry of the stream delivered and acknowledged (Redis 6.2 has no group ``lag``)."""
    group = store.redis.xinfo_groups("transactions")[0]
    stream = store.redis.xinfo_stream("transactions")
    return group["last-delivered-id"] == stream["last-generated-id"] and group["pending"] == 0


def _assert_online_equals_offline(store: FeatureStore) -> None:
    cards = [f"c{i:06d}" for i in range(17)] + ["c999999"]
    now = datetime.now(UTC)
    online = store.get_online_features(FEATURES, {"card_id": cards}, at=now)
    offline = store.get_historical_features(
        pl.DataFrame({"card_id": cards, "event_timestamp": [now] * len(cards)}), FEATURES, as_available=True
    )
    for name, values in zip(online.names, online.values, strict=True):
        expected = offline[name].to_list()
        for got, want in zip(values, expected, strict=True):
            assert got == pytest.approx(want, rel=1e-9) if isinstance(want, float) else got == want, (
                name,
                values,
                expected,
            )
    assert online.statuses[0][-1] == "NOT_FOUND"


def test_pushed_events_reach_online_and_offline_and_bad_ones_are_dead_lettered(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    store = _store(example_repo, isolated_redis_url, tmp_path)
    events = _events(300)  # polars, then pandas (as Feast's push takes), then rows as dicts
    pushed = store.push("transactions", events.head(100)) + store.push(
        "transactions", events[100:200].to_pandas()
    )
    assert pushed + store.push("transactions", tuple(events[200:].to_dicts())) == 330
    malformed = store.redis.xadd("transactions", {"card_id": "c000001", "event_time": "yesterday"})
    late = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    too_late = store.redis.xadd(
        "transactions",
        {"event_id": "late", "card_id": "c000001", "amount": "5", "currency": "USD", "event_time": late},
    )
    ingestor = store.ingestor(batch_size=64)
    while ingestor.step():
        pass
    assert ingestor.stats.events == 332 and ingestor.stats.duplicates == 30
    dead = store.redis.xrange(dead_letter_stream("transactions"))
    reasons = sorted(fields[b"__reason"].decode() for _, fields in dead)
    assert len(reasons) == 2
    assert sorted(fields[b"__entry"] for _, fields in dead) == sorted(
        [malformed, too_late]
    )  # the stream entries
    assert reasons[0].startswith("malformed: Invalid isoformat string: 'yesterday'")
    assert reasons[1].startswith("too late: arrived 108") and reasons[1].endswith(
        "allowed lateness is 3600 s"
    )
    landed = pl.read_parquet(example_repo / "data" / "stream" / "transactions" / "*.parquet")
    assert landed.height == 331  # every parsed event, duplicates and too-late included: history keeps all
    assert ingestor.lag() == {"transactions": 0}
    _assert_online_equals_offline(store)


def test_an_event_the_transform_fails_on_is_dead_lettered_and_the_rest_are_applied(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """A transform that raised on one event stopped ``ingest`` with "internal error" at every
    start, its whole batch left pending; offline, the same event fails a training set in one line."""
    fraud = example_repo / "fraud.py"
    fraud.write_text(
        fraud.read_text()
        .replace('"is_night": pl.Boolean}', '"is_night": pl.Boolean, "cents": pl.Int32}')
        .replace(
            "        is_night=",
            '        cents=(pl.col("amount") * 100).cast(pl.Int32, strict=True),\n        is_night=',
        )
    )
    store = _store(example_repo, isolated_redis_url, tmp_path)
    events = _events(40).unique("event_id", keep="first", maintain_order=True)
    huge = events.slice(7, 2).with_columns(event_id=pl.lit("huge"), amount=pl.lit(1e12))  # no Int32 cents
    store.push("transactions", pl.concat([events.head(20), huge.head(1), events.slice(20), huge.tail(1)]))
    ingestor = store.ingestor(batch_size=64)
    while ingestor.step():
        pass
    assert (ingestor.stats.applied, ingestor.stats.dead_lettered) == (40, 2)
    for _, letter in store.redis.xrange(dead_letter_stream("transactions")):
        assert letter[b"event_id"] == b"huge" and letter[b"__reason"].decode().startswith(
            "transform 'enrich' of view 'card_activity' failed: conversion from `f64` to `i32` failed"
        )
    assert store.redis.xpending("transactions", GROUP)["pending"] == 0
    with pytest.raises(
        TransformError, match="^transform 'enrich' of view 'card_activity' failed: conversion"
    ):
        _assert_online_equals_offline(store)  # the landed history holds the event
    for landed in (example_repo / "data" / "stream" / "transactions").glob("*.parquet"):  # without it
        pl.read_parquet(landed).filter(pl.col("event_id") != "huge").write_parquet(landed)
    _assert_online_equals_offline(store)


def test_dead_letters_keep_the_newest_and_count_every_one(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """A producer sending garbage must not fill the serving Redis: the dead-letter stream keeps
    the newest, and every dead letter stays counted by kind; `skewless dead-letters` shows both."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    late = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    sent = [store.redis.xadd("transactions", {"card_id": f"c{i}", "event_time": "soon"}) for i in range(5)]
    sent += [
        store.redis.xadd(
            "transactions",
            {"event_id": f"l{i}", "card_id": "c1", "amount": "5", "currency": "USD", "event_time": late},
        )
        for i in range(3)
    ]
    ingestor = store.ingestor(batch_size=3, dead_letter_max=4)
    while ingestor.step():
        pass
    letters = store.dead_letters(last=2)["transactions"]
    assert (letters.counts, letters.kept) == ({"malformed": 5, "too late": 3}, 4)
    assert [letter.entry.encode() for letter in letters.newest] == sent[:-3:-1]  # newest first
    assert (
        letters.newest[0].reason.startswith("too late: arrived")
        and letters.newest[0].fields["event_id"] == "l2"
    )
    with pytest.raises(
        DefinitionError, match="No stream for source.*card_profiles.*streamed sources: transactions"
    ):
        store.dead_letters(["card_profiles"])
    env = {**os.environ, **_env(isolated_redis_url, tmp_path)}
    shown = subprocess.run(
        [SKEWLESS, "dead-letters", "--repo", str(example_repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "transactions (transactions:dead): 8 dead letters, 4 kept" in shown.stdout
    assert all(word in shown.stdout for word in ("malformed", "too late", "event_id=l2"))


def test_push_rejects_bad_events_whole(example_repo: Path, isolated_redis_url: str, tmp_path: Path) -> None:
    store = _store(example_repo, isolated_redis_url, tmp_path)
    with pytest.raises(ExecutionError, match="source 'transactions' has no column colour"):
        store.push("transactions", [{"card_id": "c1", "event_time": datetime.now(UTC), "colour": "red"}])
    with pytest.raises(ExecutionError, match="column 'amount' is not Float64"):
        store.push("transactions", [{"card_id": "c1", "event_time": datetime.now(UTC), "amount": "lots"}])
    with pytest.raises(ExecutionError, match="has no time zone"):
        store.push("transactions", [{"card_id": "c1", "event_time": datetime(2026, 1, 1)}])
    # Text is read by the stream's rule: a time without a zone is not taken for UTC.
    for not_a_time in ("now", "2026-11-29T08:00:00", "2026-11-29"):
        with pytest.raises(
            ExecutionError,
            match=f"column 'event_time' holds '{not_a_time}', not a time with a zone; send ISO",
        ):
            store.push(
                "transactions",
                [{"card_id": "c1", "event_time": "2026-11-29T08:00:00Z"}, {"event_time": not_a_time}],
            )
    for not_events in (5, "c1", [1]):
        with pytest.raises(
            ExecutionError, match="give a DataFrame \\(polars or pandas\\) or a list of dicts"
        ):
            store.push("transactions", not_events)
    with pytest.raises(ExecutionError, match="1 event\\(s\\) have no event time 'event_time'"):
        store.push("transactions", [{"card_id": "c1", "event_time": datetime.now(UTC)}, {"card_id": "c2"}])
    assert store.redis.xlen("transactions") == 0


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("count", [1.5], "column 'count' takes whole numbers"),
        ("count", ["3"], "column 'count' is not Int64 \\(String given\\)"),
        ("amount", [True], "column 'amount' is not Float64 \\(Boolean given\\)"),
        ("name", [7], "column 'name' is not String \\(Int64 given\\)"),
        ("name", [7.0], "column 'name' is not String \\(Float64 given\\)"),
        ("flag", [1], "column 'flag' is not Boolean \\(Int64 given\\)"),
        ("at", [1.5], "column 'at' is not Datetime.* \\(Float64 given\\)"),
    ],
)
def test_push_refuses_values_a_cast_would_change(
    isolated_redis_url: str, column: str, values: list[object], message: str
) -> None:
    """A value of another type is refused, not cast: a cast would truncate a count of 1.5 to 1,
    make ``true`` an amount of 1.0 or the number 7.0 the name "7.0" (streamed text could not
    say either). The source is the stream reader's tests' own, a column of every type."""
    client = redis.Redis.from_url(isolated_redis_url)
    source = replace(MIXED_SOURCE, stream="mixed")
    columns = {"name": ["u1"], "count": [2], "amount": [0.5], "flag": [True], "at": [datetime.now(UTC)]}
    with pytest.raises(ExecutionError, match=message):
        push_events(client, source, pl.DataFrame({**columns, column: values}, strict=False))
    assert client.xlen("mixed") == 0
    # What keeps its meaning passes: whole floats for integers, integers for floats, ISO text
    # and integer microseconds for times.
    kept = {"count": [2.0], "amount": [3], "at": ["2026-11-29T12:00:00Z"]}
    assert push_events(client, source, pl.DataFrame({**columns, **kept})) == 1
    assert push_events(client, source, pl.DataFrame({**columns, "at": [1_795_000_000_000_000]})) == 1
    fields = [entry[1] for entry in client.xrange("mixed")]
    assert [f[b"count"] for f in fields] == [b"2", b"2"]
    assert [f[b"amount"] for f in fields] == [b"3.0", b"0.5"]
    assert fields[1][b"at"] == datetime.fromtimestamp(1_795_000_000, UTC).isoformat().encode()


def test_push_of_no_events_says_so(example_repo: Path, isolated_redis_url: str, tmp_path: Path) -> None:
    store = _store(example_repo, isolated_redis_url, tmp_path)
    for nothing in ([], pl.DataFrame(), pl.DataFrame({"card_id": [], "event_time": []})):
        with pytest.raises(ExecutionError, match="no events to push"):
            store.push("transactions", nothing)
    with pytest.raises(DefinitionError, match="Unknown source 'nope'"):
        store.push("nope", [])


def test_killing_ingest_mid_stream_loses_and_double_counts_nothing(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    store = _store(example_repo, isolated_redis_url, tmp_path)
    env = {**os.environ, **_env(isolated_redis_url, tmp_path)}
    command = [SKEWLESS, "ingest", "--repo", str(example_repo), "--batch-size", "25", "--claim-after", "0.5"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for seed in range(8):
            store.push("transactions", _events(250, seed=seed))
        wait_until(
            lambda: (
                len(list((example_repo / "data" / "stream" / "transactions").glob("*.parquet"))) >= 5
                if (example_repo / "data" / "stream" / "transactions").exists()
                else False
            ),
            60,
        )
        first.send_signal(signal.SIGKILL)  # mid-stream: some batches read but not acknowledged
        first.wait(10)
        second = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: _drained(store), 120)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    _assert_online_equals_offline(store)
    for view in ("card_activity", "merchant_activity"):
        assert not kept_forever(store.redis, view), view


@dataclass
class _OwnRedisIngest:
    """A `skewless ingest` process (batches of 25) on a redis-server of the test's own, which
    the test may stop and start again (``servers``: every one started, the last is running)."""

    store: FeatureStore
    process: subprocess.Popen[bytes]
    log: Path
    port: int
    servers: list[subprocess.Popen[bytes]]


@contextlib.contextmanager
def _ingest_on_own_redis(repo: Path, tmp_path: Path) -> Iterator[_OwnRedisIngest]:
    port = free_port()
    servers = [redis_server(port, tmp_path)]
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, **_env(url, tmp_path)}
    log = tmp_path / "ingest.log"
    command = [SKEWLESS, "ingest", "--repo", str(repo), "--batch-size", "25"]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield _OwnRedisIngest(_store(repo, url, tmp_path), process, log, port, servers)
    finally:
        process.send_signal(signal.SIGCONT)  # in case the test paused it
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        for server in servers:
            server.terminate()
            server.wait(10)


def test_ingest_waits_out_a_redis_restart_and_loses_and_double_counts_nothing(
    example_repo: Path, tmp_path: Path
) -> None:
    """Redis stops mid-stream (its data saved) and starts again: `skewless ingest` says so, keeps
    running, and applies every event once, those that came during the outage included."""
    with _ingest_on_own_redis(example_repo, tmp_path) as ingest:
        store, log = ingest.store, ingest.log
        for seed in range(4):
            store.push("transactions", _events(250, seed=seed))
        landed = example_repo / "data" / "stream" / "transactions"
        wait_until(lambda: landed.exists() and len(list(landed.glob("*.parquet"))) >= 3, 60)
        with contextlib.suppress(redis.ConnectionError):
            store.redis.shutdown(save=True)  # mid-stream: the process loses Redis
        ingest.servers[-1].wait(10)
        wait_until(lambda: "Redis is unreachable" in log.read_text(), 30)
        ingest.servers.append(redis_server(ingest.port, tmp_path))  # loads what the shutdown saved
        for seed in range(4, 6):
            store.push("transactions", _events(250, seed=seed))
        wait_until(lambda: _drained(store), 120)
        assert ingest.process.poll() is None and "Redis is back" in log.read_text()
        _assert_online_equals_offline(store)


def test_ingest_waits_for_room_in_a_full_redis_and_loses_and_double_counts_nothing(
    example_repo: Path, tmp_path: Path
) -> None:
    """Redis is full (noeviction) when a batch comes: `skewless ingest` says so, keeps running
    with the batch unacknowledged, and once memory is freed applies every event once. (Before,
    it stopped with Redis's error.)"""
    with _ingest_on_own_redis(example_repo, tmp_path) as ingest:
        store, log = ingest.store, ingest.log
        store.push("transactions", _events(250, seed=0))
        wait_until(lambda: "Ingesting" in log.read_text() and _drained(store), 60)
        ingest.process.send_signal(signal.SIGSTOP)  # so that the next events meet a full Redis
        store.push("transactions", _events(250, seed=1))
        filler = fill_redis(store.redis)
        ingest.process.send_signal(signal.SIGCONT)
        wait_until(lambda: "Redis is full" in log.read_text(), 30)
        assert not _drained(store)
        store.redis.delete(*filler)
        wait_until(lambda: _drained(store), 60)
        assert ingest.process.poll() is None and "Redis has room again" in log.read_text()
        _assert_online_equals_offline(store)


def test_incremental_materialization_replays_ingested_events_without_ids_as_applied(
    make_store: Callable[..., FeatureStore], example_repo: Path
) -> None:
    """A source that declares no event id: ingest identifies each event by its stream entry, and
    it lands offline with that entry, so an incremental materialization replaying it from the
    history recognizes it as applied (before, the replay took it for a new event)."""
    definitions = example_repo / "fraud.py"
    definitions.write_text(definitions.read_text().replace('    event_id="event_id",\n', "", 1))
    store = make_store(events=2_000, cards=17)
    store.materialize(["card_activity"])  # the watermark: the end of the generated history
    assert store.push("transactions", _events(200)) == 220
    ingestor = store.ingestor(batch_size=64)
    while ingestor.step():
        pass
    assert ingestor.stats.duplicates == 0  # without ids, repeated rows are different events
    cards = {"card_id": [f"c{i:06d}" for i in range(17)]}
    before = store.get_online_features(FEATURES, cards)
    (result,) = store.materialize(["card_activity"], incremental=True)
    assert result.written == 0
    assert store.get_online_features(FEATURES, cards) == before
    _assert_online_equals_offline(store)


def test_consumers_finishing_out_of_order_lose_nothing(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """Two consumers of one group: the first reads an event that arrived a second before its
    lateness ran out; the second reads and applies a later event of the same card before the
    first writes. The earlier event still counts once (before, the later event's ingest time
    became the card's high-water mark, below which the earlier id passed for one seen long ago)."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    start = datetime.now(UTC) - timedelta(seconds=30)
    millis = int(start.timestamp() * 1000)
    for event_id, event_time, entry in [
        ("a", start - timedelta(hours=1) + timedelta(seconds=1), f"{millis}-0"),
        ("b", start + timedelta(seconds=10), f"{millis + 10_000}-0"),  # arrived 10 s later
    ]:
        store.redis.xadd(
            "transactions",
            {"event_id": event_id, "card_id": "c000001", "merchant_id": "m00001", "amount": "5",
             "currency": "USD", "event_time": event_time.isoformat()},
            id=entry,
        )  # fmt: skip
    first, second = (store.ingestor(batch_size=1, consumer=name) for name in ("first", "second"))
    (source, plans), *_ = first.sources.values()
    earlier = first._prepare(source, plans)
    assert second.step() == 1  # the later event, written first
    assert earlier is not None
    first._finish(earlier)
    assert first.stats.applied == 1 and first.stats.duplicates == 0
    count = store.get_online_features(["card_activity:count_24h"], {"card_id": ["c000001"]})
    assert count.values == [[2]]
    _assert_online_equals_offline(store)


def test_lingering_reads_fewer_larger_batches_and_applies_every_event(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """With ``linger_s``, a batch short of full is followed by a wait: events pushed one at a
    time every 20 ms are read in batches at most one per linger, and every one is applied."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    events = _events(60).head(60)  # no copies: 60 distinct events
    ingestor = store.ingestor(batch_size=1_000, linger_s=0.3)

    def push_slowly() -> None:
        for i in range(events.height):
            store.push("transactions", events.slice(i, 1))
            time.sleep(0.02)

    pusher = threading.Thread(target=push_slowly)
    started = time.monotonic()
    pusher.start()
    ingestor.run(until=lambda: ingestor.stats.events >= 60 or time.monotonic() - started > 30)
    elapsed = time.monotonic() - started
    pusher.join()
    assert ingestor.stats.events == ingestor.stats.applied == 60
    assert ingestor.stats.batches <= 2 + elapsed / 0.3  # without lingering: about one per event
    _assert_online_equals_offline(store)


def test_ingest_reports_its_counts_and_rate_when_it_stops(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """`skewless ingest --seconds` stops by itself and ends with a line of counts and the rate."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    store.push("transactions", _events(30))  # 30 events and 3 copies
    result = subprocess.run(
        [SKEWLESS, "ingest", "--repo", str(example_repo), "--seconds", "1", "--linger", "0.1"],
        env={**os.environ, **_env(isolated_redis_url, tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("events 33 (") and "/s on average) · applied 30 · duplicates 3 · " in last
    assert last.endswith("dead-lettered 0 · lag 0")


def _group_members(store: FeatureStore) -> dict[str, int]:
    """The consumer group's consumers, each with its pending entries."""
    consumers = store.redis.xinfo_consumers("transactions", GROUP)
    return {
        c["name"].decode() if isinstance(c["name"], bytes) else c["name"]: c["pending"] for c in consumers
    }


def test_a_stopped_ingest_leaves_the_consumer_group(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """Each process reads under a name of its own: without leaving, the group would list every
    `ingest` ever started."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    env = {**os.environ, **_env(isolated_redis_url, tmp_path)}
    store.push("transactions", _events(100))
    store.redis.xgroup_create("transactions", GROUP, id="0")
    process = subprocess.Popen(
        [SKEWLESS, "ingest", "--repo", str(example_repo)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _drained(store), 60)
        assert len(_group_members(store)) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert _group_members(store) == {}


def test_consumers_that_died_leave_the_group_once_nothing_of_theirs_is_pending(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """A consumer that died (never marked alive again) is removed by a live one once it has been
    idle as long as a claim waits, but only once what it left pending has been claimed: its
    entries are never dropped with it."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    store.push("transactions", _events(40))  # 44 entries
    live = store.ingestor(batch_size=100, claim_idle_ms=1_000)  # creates the group
    for dead, count in [("died-idle", 10), ("died-busy", 10)]:
        entries = store.redis.xreadgroup(GROUP, dead, {"transactions": ">"}, count=count)[0][1]
        if dead == "died-idle":  # it acknowledged what it read before it died
            store.redis.xack("transactions", GROUP, *[entry_id for entry_id, _ in entries])
    assert live.step() == 24  # the 24 entries nobody read; the busy one's 10 are not idle yet
    assert _group_members(store) == {live.consumer: 0, "died-idle": 0, "died-busy": 10}
    time.sleep(1.1)
    assert live.step() == 10  # claimed from the busy one, then applied
    assert _group_members(store) == {live.consumer: 0, "died-idle": 0, "died-busy": 0}
    live.step()  # nothing left to claim: both leave the group
    assert _group_members(store) == {live.consumer: 0}
    _assert_online_equals_offline(store)


def test_the_stream_keeps_only_what_a_consumer_group_still_needs(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """Acknowledged entries are trimmed (the offline history has them); entries another group
    has not read yet, or a consumer read but not acknowledged, are kept."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    store.push("transactions", _events(1_000))  # 1,100 entries
    store.redis.xgroup_create("transactions", "audit", id="0")  # a group of the user's own
    ingestor = store.ingestor(batch_size=100, trim_every_s=0)
    while ingestor.step():
        pass
    assert store.redis.xlen("transactions") == 1_100  # "audit" has read nothing yet
    store.redis.xgroup_destroy("transactions", "audit")
    (source, plans), *_ = ingestor.sources.values()
    store.push("transactions", _events(50, seed=2))
    unacknowledged = ingestor._prepare(source, plans)  # read, not yet written
    assert unacknowledged is not None
    trim_acknowledged(store.redis, "transactions")
    left = [entry_id for entry_id, _ in store.redis.xrange("transactions")]
    assert left[: len(unacknowledged.entries)] == [entry_id for entry_id, _ in unacknowledged.entries]
    ingestor._finish(unacknowledged)
    assert ingestor.stats.events == 1_155


def test_compaction_merges_acknowledged_landed_files_and_changes_nothing_read(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    store = _store(example_repo, isolated_redis_url, tmp_path)
    store.push("transactions", _events(300))
    ingestor = store.ingestor(batch_size=25)
    for _ in range(4):
        ingestor.step()
    # Another consumer reads a batch and never acknowledges it: it could land later, anywhere.
    [(_, stuck)] = store.redis.xreadgroup(GROUP, "stuck", {"transactions": ">"}, count=25)
    while ingestor.step():
        pass
    landed = example_repo / "data" / "stream" / "transactions"
    before = sorted(landed.glob("*.parquet"))
    later = [p for p in before if entry_position(p.stem.replace("_", "-")) > entry_position(stuck[0][0])]
    result = store.compact(settle=timedelta(0))["transactions"]
    assert (result.files_before, result.files_after) == (len(before), 1 + len(later))
    assert len(before) - len(later) >= 2
    _assert_online_equals_offline(store)


def test_ingesting_a_source_without_a_stream_names_those_with_one(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    store = _store(example_repo, isolated_redis_url, tmp_path)
    for named in (["card_profiles"], ["nope"]):  # a source without a stream, a source that does not exist
        with pytest.raises(
            DefinitionError, match=rf"No stream for source\(s\) {named[0]}; streamed sources: transactions\."
        ):
            store.ingestor(named)


def test_non_finite_amounts_count_as_null_and_do_not_stop_ingest(
    example_repo: Path, isolated_redis_url: str, tmp_path: Path
) -> None:
    """An amount of NaN or infinity is null for the aggregations, online and offline alike (before,
    Redis refused to add it: the script failed half-applied, ingest stopped, and after restarts
    the card kept its counts without its sums)."""
    store = _store(example_repo, isolated_redis_url, tmp_path)
    now = datetime.now(UTC).isoformat()
    for i, amount in enumerate(["5", "nan", "inf", "-inf", "1e400", "7"]):
        store.redis.xadd(
            "transactions",
            {"event_id": f"n{i}", "card_id": "c000001", "merchant_id": "m00001", "currency": "USD",
             "event_time": now, "amount": amount},
        )  # fmt: skip
    ingestor = store.ingestor()
    while ingestor.step():
        pass
    assert ingestor.stats.applied == 6 and ingestor.stats.dead_lettered == 0
    online = store.get_online_features(
        ["card_activity:count_1h", "card_activity:amount_usd_sum_24h"], {"card_id": ["c000001"]}
    )
    assert online.values == [[6], [12.0]]  # six events; only 5 and 7 add up
    _assert_online_equals_offline(store)
