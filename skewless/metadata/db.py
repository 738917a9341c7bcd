"""Open the metadata database, upgrading its schema to the newest migration on first use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from alembic import command
from skewless._errors import MetadataError
from skewless._resources import resource_dir

__all__ = ["Database", "alembic_config", "open_database"]


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that finds the migrations wherever skewless is installed."""
    config = Config()
    config.set_main_option("script_location", str(resource_dir("alembic")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _enable_sqlite_foreign_keys(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


class Database:
    """The metadata database: an engine, a session factory, and the schema at head."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise MetadataError(
                    f"Metadata database error: {exc.__class__.__name__}: {exc.args[0]}"
                ) from exc
            except BaseException:
                session.rollback()
                raise

    def revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def close(self) -> None:
        """Release the database's connections."""
        self.engine.dispose()


def open_database(url: str, *, upgrade: bool = True) -> Database:
    """Connect to ``url`` and, unless ``upgrade`` is False, bring its schema to head."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, pool_pre_ping=True, **_pool_options(make_url(url)))
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise MetadataError(
            f"Cannot use database URL {_shown(url)!r}: {exc}; check SKEWLESS_DATABASE_URL."
        ) from exc
    if engine.dialect.name == "sqlite":
        _enable_sqlite_foreign_keys(engine)
    database = Database(engine)
    if upgrade:
        _upgrade_to_head(database, url)
    return database


def _shown(url: str) -> str:
    """``url`` with its password hidden, when it parses at all."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return url


def _pool_options(url: URL) -> dict[str, Any]:
    """An in-memory SQLite database exists once per connection: every thread (a materialization
    records its run from one) shares one connection, or each would see an empty database."""
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    if not in_memory:
        return {}
    return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}


def _upgrade_to_head(database: Database, url: str) -> None:
    config = alembic_config(url)
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        if database.revision() == head:
            return
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        safe = database.engine.url.render_as_string(hide_password=True)
        raise MetadataError(
            f"Cannot reach or migrate the metadata database at {safe}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}; check SKEWLESS_DATABASE_URL and that the server runs."
        ) from exc
