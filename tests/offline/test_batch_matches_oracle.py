"""Property: the batch executor equals the brute-force oracle for every aggregation, on random
event sets with out-of-order, duplicated, late, null and invalid events, and entity rows before
the first event and after the TTL."""

from __future__ import annotations

import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skewless import Aggregation, Entity, EventSource, FeatureView, PlainView, row_transform
from skewless.transforms.batch import ROW_CHUNK, TILE_RATIO, BatchExecutor
from skewless.transforms.compiled import compile_view, restricted
from tests import oracle

MINUTE = 60_000_000
T0 = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
TS = pl.Datetime("us", "UTC")
LATENESS = 20 * MINUTE
TTL = 90 * MINUTE

account = Entity(name="account", join_key="account")
source = EventSource(
    name="payments",
    path="payments.parquet",
    event_time="event_time",
    ingest_time="ingest_time",
    event_id="event_id",
    allowed_lateness="20m",
    schema={
        "event_id": pl.String,
        "account": pl.String,
        "amount": pl.Float64,
        "units": pl.Int64,
        "shop": pl.String,
        "event_time": TS,
        "ingest_time": TS,
    },
)


@row_transform(outputs={"big": pl.Boolean, "amount2": pl.Float64})
def derive(events: pl.DataFrame) -> pl.DataFrame:
    return events.with_columns(big=pl.col("amount") > 50, amount2=pl.col("amount") * 2)


AGGREGATIONS = [
    Aggregation("count", window="10m", granularity="1m"),
    Aggregation("count", "amount", window="1h", granularity="5m"),
    Aggregation("sum", "amount2", window="1h", granularity="10m"),
    Aggregation("sum", "units", window="30m", granularity="5m"),
    Aggregation("sum", "big", window="2h", granularity="1h"),
    Aggregation("mean", "amount", window="30m", granularity="5m"),
    Aggregation("min", "units", window="1h", granularity="15m"),
    Aggregation("max", "amount", window="20m", granularity="1m"),
    Aggregation("max", "shop", window="1h", granularity="5m"),
    Aggregation("distinct_count", "shop", window="20m", granularity="5m"),
    Aggregation("last", "amount", window="1h", granularity="5m"),
    Aggregation("last", "shop", window="2h", granularity="30m"),
]

#: TTLs in minutes: within the longest window (2 h), beyond it, and none — the batch executor
#: decides an entity's liveness inside the windows' join in the first case and by an ASOF join
#: over all history in the others.
TTL_MINUTES = (90, 180, None)
#: Raw events only, the executor's default, and tiles for every aggregation that can use them
#: (all but the shortest few here; see window_sql.tiled_aggregations).
TILE_RATIOS = (None, TILE_RATIO, 0.0)


def _view(ttl_minutes: int | None) -> FeatureView:
    ttl = None if ttl_minutes is None else f"{ttl_minutes}m"
    return FeatureView(
        name="activity",
        entities=[account],
        source=source,
        transform=derive,
        aggregations=AGGREGATIONS,
        ttl=ttl,
    )


PLAIN = PlainView(
    name="latest_payment", entities=[account], source=source, features=["amount", "shop", "units"], ttl="90m"
)

times = st.integers(0, 240 * MINUTE).map(lambda us: us - us % 1_000_000)  # whole seconds, to hit tile edges
boundaries = st.integers(0, 48).map(lambda k: k * 5 * MINUTE)  # exactly on tile boundaries
event_times = st.one_of(times, boundaries)
delays = st.one_of(
    st.just(0), st.integers(0, 5 * MINUTE), st.integers(15 * MINUTE, 30 * MINUTE), st.just(-MINUTE)
)


def _payment(
    key: str, minute: int, event_id: str | None, amount: float, position: int, units: int = 1
) -> oracle.Event:
    values = {"amount": amount, "units": units, "shop": f"s{position}"}
    return oracle.Event(key, minute * MINUTE, minute * MINUTE, event_id, values, position)


#: Two events without an id at one time (each counts, and `last` breaks their tie by value),
#: and a copy of an event with an id (only the first counts): too rare for random draws to hit.
NULL_IDS_AND_A_COPY = [
    _payment("a", 10, None, 7.0, 0),
    _payment("a", 10, None, 3.0, 1),
    _payment("a", 12, "e1", 5.0, 2),
    _payment("a", 12, "e1", 9.0, 3),
]


#: A sum of units beyond Int64 (null), then back within it (2⁶³ − 5), one event per batch: Redis
#: may not overflow on the way (§5).
PAST_INT64_AND_BACK = [
    _payment("a", 10, "e1", 1.0, 0, units=2**63 - 1),
    _payment("a", 11, "e2", 1.0, 1, units=1),
    _payment("a", 12, "e3", 1.0, 2, units=-5),
]


@st.composite
def event_sets(draw: st.DrawFn) -> list[oracle.Event]:
    events = []
    for position in range(draw(st.integers(0, 40))):
        event_us = draw(st.one_of(event_times, st.none()) if position % 13 == 12 else event_times)
        ingest_us = (event_us or 0) + draw(delays)
        values = {
            "amount": draw(
                st.one_of(
                    st.none(),
                    st.integers(0, 10_000).map(lambda c: c / 100),
                    st.sampled_from([math.nan, math.inf, -math.inf]),  # null for aggregations (§5)
                )
            ),
            "units": draw(
                st.one_of(
                    st.none(),
                    st.integers(-5, 20),
                    st.integers(-5, 20),
                    st.sampled_from([2**62, -(2**62), 2**63 - 1, -(2**63)]),  # sums past Int64 (§5)
                )
            ),
            "shop": draw(st.one_of(st.none(), st.sampled_from(["s1", "s2", "s3", "s4"]))),
        }
        key = draw(
            st.one_of(st.sampled_from(["a", "b", "c"]), st.none())
            if position % 11 == 10
            else st.sampled_from(["a", "b", "c"])
        )
        # A small pool, so duplicates happen; and null ids, which are nobody's copy.
        event_id = draw(st.sampled_from([*(f"e{i}" for i in range(30)), None, None]))
        events.append(oracle.Event(key, event_us, max(ingest_us, 0), event_id, values, position))
    return events


entity_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "unknown"]),
        st.one_of(times, boundaries, st.integers(0, 400 * MINUTE)),
    ),
    min_size=1,
    max_size=15,
)


def _frame(events: list[oracle.Event]) -> pl.DataFrame:
    """``events`` as the source's rows."""

    def ts(us: int | None) -> datetime | None:
        return None if us is None else datetime.fromtimestamp((T0 + us) / 1_000_000, UTC)

    return pl.DataFrame(
        {
            "event_id": [e.event_id for e in events],
            "account": [e.key for e in events],
            "amount": [e.values["amount"] for e in events],
            "units": [e.values["units"] for e in events],
            "shop": [e.values["shop"] for e in events],
            "event_time": [ts(e.event_us) for e in events],
            "ingest_time": [ts(e.ingest_us) for e in events],
        },
        schema=source.columns,
    )


def _write(events: list[oracle.Event], path: Path) -> None:
    _frame(events).write_parquet(path)


def _with_derived(events: list[oracle.Event]) -> list[oracle.Event]:
    out = []
    for e in events:
        amount = e.values["amount"]
        derived = {  # as polars computes them: NaN compares above every number
            "big": None if amount is None else (math.isnan(amount) or amount > 50),
            "amount2": None if amount is None else amount * 2,
        }
        out.append(
            oracle.Event(e.key, e.event_us, e.ingest_us, e.event_id, {**e.values, **derived}, e.position)
        )
    return out


def _same(actual: Any, expected: Any) -> bool:
    """Equal, with floats to the relative tolerance of docs/semantics.md §5 (the oracle's empty
    float sum is the integer 0)."""
    if actual is None or expected is None:
        return actual is None and expected is None
    if isinstance(expected, float) and math.isnan(expected):  # a plain view serves its row's NaN
        return isinstance(actual, float) and math.isnan(actual)
    if isinstance(actual, float) or isinstance(expected, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    return type(actual) is type(expected) and actual == expected


def _rows(rows: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"__row": list(range(len(rows))), "account": [k for k, _ in rows], "__t": [T0 + t for _, t in rows]},
        schema={"__row": pl.Int64, "account": pl.String, "__t": pl.Int64},
    )


def _batch(
    tmp_path: Path,
    events: list[oracle.Event],
    view: Any,
    rows: list[tuple[str, int]],
    as_available: bool,
    tile_ratio: float | None = TILE_RATIO,
    only: set[str] | None = None,
    row_chunk: int = ROW_CHUNK,
    sweep: bool | None = None,
    buckets: bool | None = None,
    prepared: bool = False,
) -> pl.DataFrame:
    """``events`` written as the source's history, then ``view`` computed by the batch executor
    (``only`` those of its features, as a training set asking for them computes them; rows in
    chunks of ``row_chunk``; by a sweep or the join, joined with or without time buckets, or as
    the executor chooses). ``prepared``: the history is old enough to keep a prepared history
    (transforms/prepared.py); the view is computed twice, keeping it and then reading it, and
    both must agree."""
    history = tmp_path / "payments.parquet"
    _write(events, history)
    if prepared:
        settled_ns = time.time_ns() - 60_000_000_000  # unique per example: tmp_path is reused
        os.utime(history, ns=(settled_ns, settled_ns))
    plan = compile_view(view) if only is None else restricted(compile_view(view), only)
    results = []
    for _ in range(2 if prepared else 1):
        executor = BatchExecutor(
            tmp_path, tile_ratio=tile_ratio, row_chunk=row_chunk, sweep=sweep, buckets=buckets
        )
        try:
            results.append(executor.compute(plan, _rows(rows), as_available=as_available))
        finally:
            executor.close()
    assert all(r.equals(results[0]) for r in results), "read back from the prepared history, values changed"
    if prepared and plan.kind == "feature_view":
        assert list((tmp_path / ".skewless" / "prepared" / plan.name).glob("*/events-*.arrow"))
    return results[0]


@settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    events=event_sets(),
    rows=entity_rows,
    as_available=st.booleans(),
    ttl=st.sampled_from(TTL_MINUTES),
    tile_ratio=st.sampled_from(TILE_RATIOS),
    only=st.one_of(st.none(), st.sets(st.sampled_from([str(a.name) for a in AGGREGATIONS]), min_size=1)),
    row_chunk=st.sampled_from([ROW_CHUNK, 4]),  # several chunks share relations built once
    sweep=st.sampled_from([None, True, False]),  # window functions, or the join
    buckets=st.sampled_from([None, True, False]),  # the join's time buckets
    prepared=st.booleans(),  # from a prepared history, or events read for the rows
)
@example(
    events=NULL_IDS_AND_A_COPY,
    rows=[("a", 11 * MINUTE), ("a", 20 * MINUTE)],
    as_available=False,
    ttl=90,
    tile_ratio=0.0,
    only=None,
    row_chunk=1,  # and each row a chunk of its own
    sweep=False,
    buckets=True,
    prepared=True,
)
@example(  # the far edge of the longest window: the earliest event any row can see (§4)
    events=[_payment("a", 0, "e1", 95.0, 0), _payment("a", 170, "e2", 1.0, 1)],
    rows=[("a", 179 * MINUTE + 59_000_000)],  # sees events from 0:00 on, 2 h 59 min 59 s back
    as_available=False,
    ttl=90,
    tile_ratio=None,
    only=None,
    row_chunk=ROW_CHUNK,
    sweep=True,
    buckets=None,
    prepared=False,
)
@example(
    events=PAST_INT64_AND_BACK,
    rows=[("a", 11 * MINUTE), ("a", 13 * MINUTE)],
    as_available=False,
    ttl=90,
    tile_ratio=0.0,
    only=None,
    row_chunk=ROW_CHUNK,
    sweep=False,
    buckets=None,
    prepared=False,
)
def test_feature_view_equals_oracle(
    tmp_path: Path,
    events: list[oracle.Event],
    rows: list[tuple[str, int]],
    as_available: bool,
    ttl: int | None,
    tile_ratio: float | None,
    only: set[str] | None,
    row_chunk: int,
    sweep: bool | None,
    buckets: bool | None,
    prepared: bool,
) -> None:
    if not events:
        return
    view = _view(ttl)
    result = _batch(
        tmp_path, events, view, rows, as_available, tile_ratio, only, row_chunk, sweep, buckets, prepared
    )
    truth = oracle.counted(_with_derived(events), LATENESS)
    for i, (key, t) in enumerate(rows):
        for agg in [a for a in view.aggregations if only is None or a.name in only]:
            expected = oracle.feature_value(
                truth, key, t, function=agg.function, column=agg.column,
                window_us=int(agg.window.total_seconds()) * 1_000_000,  # type: ignore[union-attr]
                granularity_us=int(agg.granularity.total_seconds()) * 1_000_000,  # type: ignore[union-attr]
                ttl_us=None if ttl is None else ttl * MINUTE, as_available=as_available,
            )  # fmt: skip
            actual = result[agg.name][i]
            assert _same(actual, expected), (agg.name, key, t, actual, expected)


@settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=event_sets(), rows=entity_rows, as_available=st.booleans())
def test_plain_view_equals_oracle(
    tmp_path: Path, events: list[oracle.Event], rows: list[tuple[str, int]], as_available: bool
) -> None:
    if not events:
        return
    result = _batch(tmp_path, events, PLAIN, rows, as_available)
    truth = oracle.counted(events, LATENESS)
    for i, (key, t) in enumerate(rows):
        for column in PLAIN.features:
            expected = oracle.plain_value(truth, key, t, column, ttl_us=TTL, as_available=as_available)
            assert _same(result[column][i], expected), (column, key, t, result[column][i], expected)


def test_last_breaks_a_full_tie_by_the_larger_value(tmp_path: Path) -> None:
    """Without event ids nothing is deduplicated, so events can tie on (event time, ingest time,
    id): ``last`` then takes the larger value (docs/semantics.md §5), whatever the arrival order."""
    anonymous = EventSource(
        name="payments",
        path="payments.parquet",
        event_time="event_time",
        ingest_time="ingest_time",
        schema={k: v for k, v in source.columns.items() if k != "event_id"},
    )
    view = FeatureView(
        name="ties",
        entities=[account],
        source=anonymous,
        aggregations=[
            Aggregation("last", "amount", window="1h", granularity="5m"),
            Aggregation("last", "shop", window="1h", granularity="5m"),
        ],
    )
    # Three events tie at minute 10; each column's `last` takes its own largest value there.
    tied = [
        _payment("a", 5, None, 9.0, 0),
        *(_payment("a", 10, None, v, i) for i, v in enumerate((3.0, 7.0, 5.0), 1)),
    ]
    _write(tied, tmp_path / "payments.parquet")
    executor = BatchExecutor(tmp_path)
    try:
        result = executor.compute(compile_view(view), _rows([("a", 20 * MINUTE), ("a", 7 * MINUTE)]))
    finally:
        executor.close()
    assert result["amount_last_1h"].to_list() == [7.0, 9.0]
    assert result["shop_last_1h"].to_list() == ["s3", "s0"]
