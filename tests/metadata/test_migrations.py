"""Alembic migrations run both ways from the repository root, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select

from skewless import MetadataError
from skewless.metadata import Database, open_database
from skewless.metadata.models import ApiKey, Base, DefinitionVersion, Finding, MonitorRun

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC = str(Path(sys.executable).with_name("alembic"))


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKEWLESS_DATABASE_URL": url}
    result = subprocess.run([ALEMBIC, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    names = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    return names


def test_upgrade_head_then_downgrade_base_from_the_repo_root(database_url: str) -> None:
    _alembic(database_url, "upgrade", "head")
    assert _tables(database_url) == set(Base.metadata.tables)
    _alembic(database_url, "downgrade", "base")
    assert _tables(database_url) == set()


def test_first_use_upgrades_automatically(database: Database) -> None:
    assert database.revision() is not None
    assert _tables(database.engine.url.render_as_string(hide_password=False)) == set(Base.metadata.tables)


def test_times_come_back_aware_utc(database: Database) -> None:
    applied = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with database.session() as session:
        session.add(
            DefinitionVersion(kind="entity", name="card", version="abc", spec={"k": 1}, applied_at=applied)
        )
    with database.session() as session:
        row = session.scalars(select(DefinitionVersion)).one()
    assert row.applied_at == applied and row.applied_at.tzinfo == UTC
    assert row.spec == {"k": 1}


def test_naive_times_are_refused(database: Database) -> None:
    with pytest.raises(MetadataError, match="naive datetime"), database.session() as session:
        session.add(
            DefinitionVersion(
                kind="entity", name="card", version="abc", spec={}, applied_at=datetime(2026, 1, 1)
            )
        )


def test_findings_cascade_with_their_monitor_run(database: Database) -> None:
    with database.session() as session:
        run = MonitorRun(monitor="data_skew", params={})
        session.add(run)
        session.flush()
        session.add(
            Finding(monitor_run_id=run.id, kind="data_skew", feature="v:f", details={}, dedup_key="k")
        )
    with database.session() as session:
        session.delete(session.scalars(select(MonitorRun)).one())
    with database.session() as session:
        assert session.scalars(select(Finding)).all() == []


def test_api_key_prefix_is_unique(database: Database) -> None:
    with database.session() as session:
        session.add(ApiKey(name="a", prefix="p1", key_hash="h", scopes=["read"]))
    with pytest.raises(MetadataError, match="IntegrityError"), database.session() as session:
        session.add(ApiKey(name="b", prefix="p1", key_hash="h2", scopes=["read"]))


def test_unreachable_database_is_one_clear_line() -> None:
    with pytest.raises(MetadataError) as info:
        open_database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    message = str(info.value)
    assert message.startswith(
        "Cannot reach or migrate the metadata database at postgresql+psycopg://nobody@127.0.0.1:1/none"
    )
    assert "check SKEWLESS_DATABASE_URL" in message and "\n" not in message


def test_a_database_url_skewless_cannot_use_is_shown_without_its_password() -> None:
    with pytest.raises(MetadataError) as info:  # no MySQL driver is installed
        open_database("mysql://user:s3cret@127.0.0.1:1/db")
    assert str(info.value).startswith("Cannot use database URL 'mysql://user:***@127.0.0.1:1/db': ")
