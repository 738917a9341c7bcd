"""Loops over Redis outlive its restarts and its being full: against a redis-server of the test's
own, stopped (its data saved) and started again, or filled to its maxmemory, while the loop runs."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from skewless.stores.redis_connection import READ_TIMEOUT_S, connect_redis
from skewless.stores.redis_memory import eviction_warning
from skewless.stores.redis_outages import ride_out_outages
from tests.service.processes import fill_redis, free_port, redis_server, wait_until


def _client(port: int) -> redis.Redis:
    """A client that does not retry on its own (redis-py's default retries a command for about 7 s)."""
    return redis.Redis(port=port, retry=Retry(NoBackoff(), 0))


def test_work_goes_on_where_it_was_once_redis_is_back(tmp_path: Path) -> None:
    port = free_port()
    servers = [redis_server(port, tmp_path)]
    client = _client(port)
    counts: list[int] = []
    lines: list[str] = []
    backs: list[bool] = []

    def restart() -> None:
        servers[0].wait(10)
        time.sleep(1.5)  # the loop meets the outage meanwhile
        servers.append(redis_server(port, tmp_path))  # loads what the shutdown saved

    restarting = threading.Thread(target=restart)

    def work() -> None:
        counts.append(int(client.incr("calls")))  # type: ignore[arg-type]
        if len(counts) == 3:
            with contextlib.suppress(redis.ConnectionError):
                client.shutdown(save=True)
            restarting.start()

    try:
        ride_out_outages(
            client,
            work,
            until=lambda: len(counts) >= 6,
            on_outage=lines.append,
            on_back=lambda: backs.append(True),
        )
    finally:
        if restarting.is_alive():  # the loop may go on before the new server is in the list
            restarting.join(15)
        for server in servers:
            server.terminate()
            server.wait(10)
    assert counts == [1, 2, 3, 4, 5, 6]  # nothing lost, nothing done twice
    assert backs == [True]
    assert (
        len(lines) == 2
        and lines[0].startswith("Redis is unreachable (")
        and lines[1].startswith("Redis is back")
    )


def test_a_stop_during_the_outage_ends_the_loop(tmp_path: Path) -> None:
    port = free_port()
    server = redis_server(port, tmp_path)
    client = _client(port)
    server.terminate()
    server.wait(10)
    started = time.monotonic()
    lines: list[str] = []
    ride_out_outages(
        client, client.ping, until=lambda: time.monotonic() - started > 2, on_outage=lines.append
    )
    assert len(lines) == 1 and "unreachable" in lines[0]


def test_other_errors_are_raised(isolated_redis_url: str) -> None:
    client = redis.Redis.from_url(isolated_redis_url)
    client.set("text", "not a list")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        ride_out_outages(client, lambda: client.lpush("text", 1), until=lambda: False, on_outage=print)


def test_a_redis_that_stops_answering_is_an_outage_too(tmp_path: Path) -> None:
    """A network partition closes nothing: a read that waits past the client's timeout is an
    outage (here redis-server is paused with SIGSTOP, then resumed)."""
    port = free_port()
    server = redis_server(port, tmp_path)
    client = redis.Redis(port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))
    answers: list[bool] = []
    lines: list[str] = []

    def work() -> None:
        answers.append(bool(client.ping()))
        if len(answers) == 2:
            server.send_signal(signal.SIGSTOP)
            threading.Timer(2.0, server.send_signal, [signal.SIGCONT]).start()

    try:
        ride_out_outages(client, work, until=lambda: len(answers) >= 4, on_outage=lines.append)
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(10)
    assert answers == [True] * 4
    assert len(lines) == 2 and "Timeout" in lines[0] and lines[1].startswith("Redis is back")


def test_the_store_client_gives_up_on_a_silent_connection(isolated_redis_url: str) -> None:
    client = connect_redis(isolated_redis_url)
    assert client.connection_pool.connection_kwargs["socket_timeout"] == READ_TIMEOUT_S


def test_work_waits_for_room_while_redis_is_full(tmp_path: Path) -> None:
    port = free_port()
    server = redis_server(port, tmp_path)
    client = _client(port)
    counts: list[int] = []
    lines: list[str] = []
    try:
        filler = fill_redis(client)
        freeing = threading.Timer(1.5, lambda: client.delete(*filler))
        freeing.start()
        ride_out_outages(
            client,
            lambda: counts.append(int(client.incr("calls"))),  # type: ignore[arg-type]
            until=lambda: len(counts) >= 3,
            on_outage=lines.append,
        )
        freeing.join()
    finally:
        server.terminate()
        server.wait(10)
    assert counts == [1, 2, 3]  # refused while full, then each once
    assert lines == [
        "Redis is full (used memory above its maxmemory) and refuses writes; raise maxmemory or free "
        "memory. Trying again every second.",
        "Redis has room again; going on where this process was.",
    ]


def test_eviction_is_warned_about(tmp_path: Path) -> None:
    port = free_port()
    server = redis_server(port, tmp_path)
    client = _client(port)
    try:
        assert eviction_warning(client) == ""  # no maxmemory: nothing is evicted
        client.config_set("maxmemory", 100_000_000)
        assert eviction_warning(client) == ""  # noeviction: full means refused, not lost
        client.config_set("maxmemory-policy", "allkeys-lru")
        assert "maxmemory-policy allkeys-lru" in eviction_warning(client)
    finally:
        server.terminate()
        server.wait(10)


def test_work_waits_while_its_address_answers_as_a_read_only_replica(tmp_path: Path) -> None:
    """A failover demotes the server the URL names: writes get READONLY until it is the primary
    again (or the name moves to the new one). The loop waits, then goes on, losing nothing."""
    primary_port, replica_port = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = [redis_server(primary_port, tmp_path / "a"), redis_server(replica_port, tmp_path / "b")]
    client, other = _client(primary_port), _client(replica_port)
    other.replicaof("127.0.0.1", primary_port)
    counts: list[int] = []
    lines: list[str] = []

    def fail_back() -> None:  # the demoted server, in sync, becomes the primary again
        other.replicaof("NO", "ONE")
        client.replicaof("NO", "ONE")

    def work() -> None:
        counts.append(int(client.incr("calls")))  # type: ignore[arg-type]
        if len(counts) == 3:
            wait_until(lambda: other.get("calls") == b"3", 10)
            other.replicaof("NO", "ONE")  # the failover: the replica is promoted …
            client.replicaof("127.0.0.1", replica_port)  # … and the URL's server follows it
            threading.Timer(1.5, fail_back).start()

    try:
        ride_out_outages(client, work, until=lambda: len(counts) >= 6, on_outage=lines.append)
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
    assert counts == [1, 2, 3, 4, 5, 6]
    assert lines == [
        "Redis answers as a read-only replica (its server was demoted, a failover?); point REDIS_URL "
        "at the primary. Trying again every second.",
        "Redis takes writes again; going on where this process was.",
    ]
