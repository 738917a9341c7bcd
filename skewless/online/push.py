"""Push: validate events against their source's schema and append them to its stream.

``FeatureStore.push`` and ``POST /push`` use this; the events then take the same path as any
streamed event (``skewless ingest``), so pushing never bypasses dedup, lateness or the offline
history. The ingest time is the stream entry's, Redis's clock when it appends the event: one
clock for pushed events and for those a producer appends itself, which keeps the consumers'
high-water mark exact (online/ingest.py, ``_pending_since``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl
import redis

from skewless._errors import ExecutionError, StoreError
from skewless.online.stream_entries import parse_time
from skewless.transforms.dtypes import dtype_name
from skewless.transforms.sources import EventSource

__all__ = ["events_frame", "push_events"]


def _check(source: EventSource, frame: pl.DataFrame) -> pl.DataFrame:
    unknown = sorted(set(frame.columns) - set(source.columns))
    if unknown:
        raise ExecutionError(
            f"source '{source.name}' has no column {', '.join(unknown)}; its columns are {', '.join(source.columns)}."
        )
    if source.event_time not in frame.columns:
        raise ExecutionError(
            f"events for source '{source.name}' need their event time column '{source.event_time}'."
        )
    typed = {column: _typed(column, frame[column], source.columns[column]) for column in frame.columns}
    missing = typed[source.event_time].null_count()
    if missing:
        raise ExecutionError(
            f"events: {missing} event(s) have no event time '{source.event_time}'; every event needs one."
        )
    return pl.DataFrame(typed)


def _typed(column: str, series: pl.Series, dtype: pl.DataType) -> pl.Series:
    """``series`` as the source declares ``column``, refused unless every value keeps its meaning:
    the stream's text of each value must read back as the same value (online/stream_entries.py).
    A cast would truncate 1.5 to an integer 1, or make ``true`` an amount of 1.0 or ``7.0`` a
    card id "7.0"."""
    given, kind = series.dtype, dtype_name(dtype)
    if isinstance(dtype, pl.Datetime) and isinstance(given, pl.Datetime) and given.time_zone is None:
        raise ExecutionError(
            f"events: '{column}' has no time zone; send UTC times (e.g. 2026-11-01T12:00:00Z)."
        )
    number = given.is_integer() or given.is_float()
    accepted = given == pl.Null or {
        "String": given == pl.String,
        "Boolean": given == pl.Boolean,
        "Datetime": isinstance(given, pl.Datetime) or given == pl.String or given.is_integer(),  # µs
    }.get(kind, number)
    wrong_type = ExecutionError(f"events: column '{column}' is not {dtype} ({given} given).")
    if not accepted:
        raise wrong_type
    if kind.startswith("Int") and given.is_float() and not (series.is_null() | (series % 1 == 0)).all():
        raise ExecutionError(
            f"events: column '{column}' takes whole numbers ({dtype}); some of its values are not."
        )
    if given == pl.String and kind == "Datetime":
        return pl.Series(column, [None if text is None else _time(column, text) for text in series], dtype)
    try:
        return series.cast(dtype, strict=True)
    except pl.exceptions.InvalidOperationError as exc:
        raise wrong_type from exc


def _time(column: str, text: str) -> datetime:
    """A time given as text, read by the stream's rule (a time without a zone is not guessed)."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise ExecutionError(
            f"events: column '{column}' holds {text!r}, not a time with a zone; "
            "send ISO times in UTC, e.g. 2026-11-01T12:00:00Z."
        ) from exc


def events_frame(events: Any) -> pl.DataFrame:
    """The events as a polars frame: given as one, as a pandas one (what Feast's ``push`` takes),
    or as a list of dicts, one per event."""
    if isinstance(events, pl.DataFrame):
        return events
    if type(events).__module__.startswith("pandas") and type(events).__name__ == "DataFrame":
        return _read(pl.from_pandas, events)
    rows = isinstance(events, Sequence) and not isinstance(events, str | bytes)
    if not rows or not all(isinstance(event, Mapping) for event in events):
        raise ExecutionError(
            "events: give a DataFrame (polars or pandas) or a list of dicts, one per event; "
            f"got {type(events).__name__}."
        )
    return _read(lambda rows: pl.DataFrame(rows, infer_schema_length=None), events)


def _read(convert: Callable[[Any], pl.DataFrame], events: Any) -> pl.DataFrame:
    try:
        return convert(events)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise ExecutionError(
            f"events: cannot read them as one table ({exc}); give each column one type."
        ) from exc


def push_events(client: redis.Redis, source: EventSource, events: pl.DataFrame | list[dict[str, Any]]) -> int:
    """Append ``events`` to ``source``'s stream; returns how many. Nothing is sent if any is invalid."""
    if source.stream is None:
        raise ExecutionError(f"source '{source.name}' has no stream=; declare one to push events to it.")
    frame = events_frame(events)
    if frame.is_empty():
        raise ExecutionError("no events to push.")
    frame = _check(source, frame)
    pipe = client.pipeline(transaction=False)
    for row in frame.iter_rows(named=True):
        fields: dict[Any, Any] = {
            k: (v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in row.items() if v is not None
        }
        pipe.xadd(source.stream, fields)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"pushing to stream '{source.stream}' failed: {exc}") from exc
    return frame.height
