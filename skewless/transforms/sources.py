"""Event sources: where a view's history lives, and where its live events arrive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

import polars as pl

from skewless._errors import DefinitionError
from skewless.transforms._checks import check_name
from skewless.transforms.dtypes import TIMESTAMP, dtype_name, validate_dtype
from skewless.transforms.durations import format_duration, parse_duration
from skewless.transforms.versioning import content_version

__all__ = ["EventSource"]


@dataclass(frozen=True, kw_only=True)
class EventSource:
    """A stream of timestamped events: history in a parquet file or DuckDB table, live in a stream.

    A profile table (one row per update of a card's profile) is an event source too: each row is
    the event "this profile changed at ``event_time``".

    Parameters
    ----------
    name
        Source name.
    schema
        Column name to polars type, for every column features may read. Live events are
        validated against it; at plan time the history file is checked against it.
    event_time
        Column holding when the event happened (UTC timestamp).
    path
        Parquet file or glob for history, relative to the repo root. Give ``path`` or ``table``.
    table
        Table in the repo's offline DuckDB database holding history.
    event_id
        Column that identifies an event; duplicates of an id count once, online and offline.
    ingest_time
        Column holding when the event reached the system; enables "as available" training sets.
    stream
        Redis Stream name that live events arrive on.
    allowed_lateness
        How long after its event time an event may still arrive and count (docs/semantics.md).

    Examples
    --------
    >>> src = EventSource(name="clicks", path="data/clicks.parquet", event_time="ts",
    ...                   schema={"user_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    >>> src.columns["ts"]
    Datetime(time_unit='us', time_zone='UTC')
    """

    name: str
    schema: Mapping[str, Any]
    event_time: str
    path: str | None = None
    table: str | None = None
    event_id: str | None = None
    ingest_time: str | None = None
    stream: str | None = None
    allowed_lateness: timedelta | str = field(default="1h")
    description: str = ""

    def __post_init__(self) -> None:
        what = f"source '{self.name}'"
        check_name(self.name, what="source")
        if (self.path is None) == (self.table is None):
            raise DefinitionError(f"{what}: give exactly one of path= (parquet) or table= (DuckDB).")
        if not isinstance(self.schema, Mapping) or not self.schema:
            raise DefinitionError(f"{what}: schema= must map each column name to a polars type.")
        columns = {
            check_name(col, what=f"{what}: column"): validate_dtype(dt, what=f"{what}: column '{col}'")
            for col, dt in self.schema.items()
        }
        object.__setattr__(self, "schema", columns)
        self._check_column(self.event_time, "event_time", timestamp=True)
        if self.ingest_time is not None:
            self._check_column(self.ingest_time, "ingest_time", timestamp=True)
        if self.event_id is not None:
            self._check_column(self.event_id, "event_id")
        lateness = parse_duration(self.allowed_lateness, what=f"{what}: allowed_lateness", allow_zero=True)
        object.__setattr__(self, "allowed_lateness", lateness)

    def _check_column(self, column: str, role: str, *, timestamp: bool = False) -> None:
        if column not in self.schema:
            raise DefinitionError(
                f"source '{self.name}': {role} column '{column}' is not in schema; "
                f"known columns: {', '.join(self.schema)}."
            )
        if timestamp and self.schema[column] != TIMESTAMP:
            raise DefinitionError(
                f"source '{self.name}': {role} column '{column}' must be "
                f"pl.Datetime('us', 'UTC'), not {self.schema[column]}."
            )

    @property
    def stream_history(self) -> str:
        """Where events ingested from the stream land offline (parquet files), relative to the repo."""
        return f"data/stream/{self.name}"

    @property
    def columns(self) -> dict[str, pl.DataType]:
        """Column name to polars type."""
        return dict(self.schema)

    def empty_frame(self) -> pl.DataFrame:
        """A zero-row frame with this source's schema, for checking transforms cheaply."""
        return pl.DataFrame(schema=self.columns)

    @property
    def version(self) -> str:
        """Content hash of the declaration: its definition version."""
        return content_version(self.spec())

    def spec(self) -> dict[str, Any]:
        """The declaration as plain data: what the definition version hashes."""
        return {
            "kind": "source",
            "name": self.name,
            "schema": {col: dtype_name(dt) for col, dt in self.schema.items()},
            "event_time": self.event_time,
            "path": self.path,
            "table": self.table,
            "event_id": self.event_id,
            "ingest_time": self.ingest_time,
            "stream": self.stream,
            "allowed_lateness": format_duration(cast(timedelta, self.allowed_lateness)),
            "description": self.description,
        }
