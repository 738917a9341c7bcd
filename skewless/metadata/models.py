"""Tables of the metadata database. Alembic migrations in top-level alembic/ create them.

One class per table; columns say what the row is for. Times are timezone-aware UTC everywhere
(``UTCDateTime`` restores the zone that SQLite drops).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Alert",
    "ApiKey",
    "Base",
    "DefinitionVersion",
    "Finding",
    "MaterializationRun",
    "MonitorRun",
    "ReferenceProfile",
    "TrainingDataset",
    "UTCDateTime",
    "Watermark",
    "utcnow",
]


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored with its zone where the database can, and read back as aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: skewless stores UTC-aware times only")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class DefinitionVersion(Base):
    """One applied version of an entity, source or view; ``retired_at`` is set when superseded."""

    __tablename__ = "definition_versions"
    __table_args__ = (Index("ix_definition_versions_kind_name", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]]
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class MaterializationRun(Base):
    """One backfill or materialization of a view over [start, end)."""

    __tablename__ = "materialization_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    view: Mapped[str] = mapped_column(String(200), index=True)
    target: Mapped[str] = mapped_column(String(16))  # offline | online
    mode: Mapped[str] = mapped_column(String(16))  # full | range | incremental
    start: Mapped[datetime | None]
    end: Mapped[datetime | None]
    definition_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    rows_written: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Watermark(Base):
    """How far (by ingest position) a view's online state is complete; incremental runs resume here."""

    __tablename__ = "watermarks"

    view: Mapped[str] = mapped_column(String(200), primary_key=True)
    target: Mapped[str] = mapped_column(String(16), primary_key=True)
    watermark: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrainingDataset(Base):
    """A training set as built: enough to rebuild it identically."""

    __tablename__ = "training_datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    features: Mapped[list[Any]]
    definition_versions: Mapped[dict[str, Any]]
    entity_rows: Mapped[int] = mapped_column(Integer)
    start: Mapped[datetime | None]
    end: Mapped[datetime | None]
    as_available: Mapped[bool] = mapped_column(default=False)
    output_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReferenceProfile(Base):
    """The distribution of one feature in one training set: the data-skew baseline."""

    __tablename__ = "reference_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    training_dataset_id: Mapped[int] = mapped_column(
        ForeignKey("training_datasets.id", ondelete="CASCADE"), index=True
    )
    feature: Mapped[str] = mapped_column(String(400))
    dtype: Mapped[str] = mapped_column(String(32))
    profile: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorRun(Base):
    """One run of a skew monitor."""

    __tablename__ = "monitor_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="running")
    summary: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Finding(Base):
    """Something a monitor found about one feature; open until a later run no longer finds it."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_run_id: Mapped[int] = mapped_column(ForeignKey("monitor_runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # infra_skew | data_skew | schema
    feature: Mapped[str] = mapped_column(String(400), index=True)
    score: Mapped[float | None]
    threshold: Mapped[float | None]
    likely_cause: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="open")
    dedup_key: Mapped[str] = mapped_column(String(400), index=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class Alert(Base):
    """One alert per open finding key: sent once, again only after it resolved and reopened."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(400), unique=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="open")
    channel: Mapped[str] = mapped_column(String(64))
    send_count: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class ApiKey(Base):
    """An API key, stored as a hash; ``prefix`` finds it, the hash proves it."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
