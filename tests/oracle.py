"""The brute-force reference for docs/semantics.md: plain Python loops over events, written from
the text alone (no SQL, no tiles, no skewless aggregator classes), used as the tests' oracle."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    key: str | None
    event_us: int | None
    ingest_us: int
    event_id: str | None
    values: dict[str, Any]
    position: int  # arrival order in the file or stream


def counted(events: list[Event], lateness_us: int) -> list[Event]:
    """§3: valid, not too late, first valid copy of each (id, event time, key) (by ingest time,
    then position); an event with a null id is nobody's copy."""
    valid = [
        e
        for e in events
        if e.key is not None
        and e.event_us is not None
        and e.event_us <= e.ingest_us
        and e.ingest_us - e.event_us <= lateness_us
    ]
    seen: set[tuple[str, int | None, str | None]] = set()
    first = []
    for e in sorted(valid, key=lambda e: (e.ingest_us, e.position)):
        if e.event_id is None or (e.event_id, e.event_us, e.key) not in seen:
            seen.add((e.event_id, e.event_us, e.key))
            first.append(e)
    return first


def floor(t: int, g: int) -> int:
    return t - t % g


def _missing(value: Any) -> bool:
    """Null for an aggregation (§5): no value, or a float that is NaN or infinite."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def aggregate(function: str, column: str | None, events: list[Event]) -> Any:
    """§5 over the events already selected for the window."""
    if column is None:
        return len(events)
    values = [e.values[column] for e in events if not _missing(e.values[column])]
    if function == "count":
        return len(values)
    if function == "sum":
        total = sum(int(v) if isinstance(v, bool) else v for v in values)
        return None if isinstance(total, int) and not -(2**63) <= total < 2**63 else total  # §5
    if function == "mean":
        return sum(float(v) for v in values) / len(values) if values else None
    if function == "min":
        return min(values, default=None)
    if function == "max":
        return max(values, default=None)
    if function == "distinct_count":
        return len(set(values))
    if function == "last":
        ranked = [
            (e.event_us, e.ingest_us, e.event_id or "", e.values[column])
            for e in events
            if not _missing(e.values[column])
        ]
        return max(ranked)[-1] if ranked else None
    raise ValueError(function)


def feature_value(
    events: list[Event],
    key: str,
    t: int,
    *,
    function: str,
    column: str | None,
    window_us: int,
    granularity_us: int,
    ttl_us: int | None,
    as_available: bool,
) -> Any:
    """§4-§7: one windowed feature for one entity row, from already counted events."""
    known = [e for e in events if e.key == key and e.event_us <= t and (not as_available or e.ingest_us <= t)]
    if not known:
        return None
    latest = max(e.event_us for e in known)
    if ttl_us is not None and latest < t - ttl_us:
        return None
    low = floor(t, granularity_us) - window_us
    return aggregate(function, column, [e for e in known if low <= e.event_us])


def plain_value(
    events: list[Event], key: str, t: int, column: str, *, ttl_us: int | None, as_available: bool
) -> Any:
    """§6 for plain views: the latest counted row's column (ties: last arrived)."""
    known = [e for e in events if e.key == key and e.event_us <= t and (not as_available or e.ingest_us <= t)]
    if not known:
        return None
    latest = max(known, key=lambda e: (e.event_us, e.ingest_us, e.position))
    if ttl_us is not None and latest.event_us < t - ttl_us:
        return None
    return latest.values[column]
