"""Each malformed definition fails at definition time with its own one-line, actionable message."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from skewless import (
    Aggregation,
    DefinitionError,
    Entity,
    EventSource,
    FeatureService,
    FeatureView,
    PlainView,
    row_transform,
)

TS = pl.Datetime("us", "UTC")
card = Entity(name="card", join_key="card_id")
txns = EventSource(
    name="txns",
    path="data/t.parquet",
    event_time="ts",
    schema={"card_id": pl.String, "amount": pl.Float64, "currency": pl.String, "ts": TS},
)


@row_transform(outputs={"amount_usd": pl.Float64})
def to_usd(events: pl.DataFrame) -> pl.DataFrame:
    return events.with_columns(amount_usd=pl.col("amount") * 1.0)


@row_transform(outputs={"amount_usd": pl.Float64})
def wrong_type(events: pl.DataFrame) -> pl.DataFrame:
    return events.with_columns(amount_usd=pl.col("amount").cast(pl.Int64))


@row_transform(outputs={"amount_usd": pl.Float64})
def forgets_column(events: pl.DataFrame) -> pl.DataFrame:
    return events


def view(**overrides: Any) -> FeatureView:
    kwargs: dict[str, Any] = {
        "name": "card_spend",
        "entities": [card],
        "source": txns,
        "aggregations": [Aggregation("sum", "amount", window="1h")],
    }
    return FeatureView(**{**kwargs, **overrides})


CASES = {
    "unknown column": (
        lambda: view(aggregations=[Aggregation("sum", "amount_us", window="1h")]),
        "view 'card_spend': aggregation 'amount_us_sum_1h' reads unknown column 'amount_us'; known columns: card_id, amount, currency, ts.",
    ),
    "bad window string": (
        lambda: Aggregation("sum", "amount", window="1 hour"),
        "aggregation sum('amount', '1 hour'): window: '1 hour' is not a duration; write a whole number and one unit of s, m, h, d, w, e.g. '10m' or '7d'.",
    ),
    "duplicate feature name": (
        lambda: view(
            aggregations=[
                Aggregation("sum", "amount", window="1h"),
                Aggregation("max", "amount", window="1h", name="amount_sum_1h"),
            ]
        ),
        "view 'card_spend': feature name 'amount_sum_1h' is declared twice; give one of them another name=.",
    ),
    "granularity does not divide window": (
        lambda: Aggregation("count", window="1h", granularity="7m"),
        "aggregation count('1h'): granularity '7m' does not divide window '1h'; pick a tile size that divides it, e.g. '5m'.",
    ),
    "transform returns the wrong type": (
        lambda: view(transform=wrong_type, aggregations=[Aggregation("sum", "amount_usd", window="1h")]),
        "view 'card_spend': transform 'wrong_type' returned 'amount_usd' as Int64 but declared Float64; cast it or fix outputs=.",
    ),
    "transform misses a declared column": (
        lambda: view(transform=forgets_column),
        "view 'card_spend': transform 'forgets_column' did not return declared output column 'amount_usd'.",
    ),
    "unknown aggregation function": (
        lambda: Aggregation("median", "amount", window="1h"),
        "aggregation median('amount', '1h'): unknown function 'median'; use one of count, sum, mean, min, max, distinct_count, last.",
    ),
    "sum over a string column": (
        lambda: view(aggregations=[Aggregation("sum", "currency", window="1h")]),
        "view 'card_spend': aggregation sum('currency', '1h') needs a numeric column, but 'currency' is String; cast it in the transform or use another function.",
    ),
    "join key missing from source": (
        lambda: view(entities=[Entity(name="merchant", join_key="merchant_id")]),
        "view 'card_spend': entity 'merchant' join key 'merchant_id' is not a column of source 'txns'; add it to the source schema.",
    ),
    "event time is not a UTC timestamp": (
        lambda: EventSource(name="s", path="x.parquet", event_time="ts", schema={"ts": pl.Datetime("us")}),
        "source 's': column 'ts': timestamps must be UTC; declare pl.Datetime('us', 'UTC') (naive or other-zone times are ambiguous).",
    ),
    "event time column missing": (
        lambda: EventSource(name="s", path="x.parquet", event_time="when", schema={"ts": TS}),
        "source 's': event_time column 'when' is not in schema; known columns: ts.",
    ),
    "source with both path and table": (
        lambda: EventSource(name="s", path="x.parquet", table="events", event_time="ts", schema={"ts": TS}),
        "source 's': give exactly one of path= (parquet) or table= (DuckDB).",
    ),
    "plain view feature unknown": (
        lambda: PlainView(name="p", entities=[card], source=txns, features=["limit"]),
        "view 'p': feature 'limit' is not a column of source 'txns'; known columns: card_id, amount, currency, ts.",
    ),
    "bad ttl": (
        lambda: view(ttl="-1d"),
        "view 'card_spend': ttl: '-1d' is not a duration; write a whole number and one unit of s, m, h, d, w, e.g. '10m' or '7d'.",
    ),
    "invalid view name": (
        lambda: view(name="Card Spend"),
        "view name 'Card Spend' is not valid; use lowercase letters, digits and '_', starting with a letter.",
    ),
    "view name too long for the metadata DB": (
        lambda: view(name="v" * 101),
        "view name 'vvvvvvvvvvvvvvvvvvvv…' has 101 characters; use at most 100.",
    ),
    "undecorated transform": (
        lambda: view(transform=lambda events: events),
        "transform '<lambda>' is not declared; decorate it with @row_transform(outputs={'column': pl.Type, ...}).",
    ),
    "log sample rate over 1": (
        lambda: view(log_sample_rate=2),
        "view 'card_spend': log_sample_rate must be a number from 0 (log nothing) to 1 (log every served vector); got 2.",
    ),
    "service lists no features": (
        lambda: FeatureService(name="model", features=[]),
        "feature service 'model': features= must list views or view[['feature', ...]] selections.",
    ),
    "service lists a non-view": (
        lambda: FeatureService(name="model", features=["card_spend:amount_sum_1h"]),
        "feature service 'model': 'card_spend:amount_sum_1h' is not a view; list views, or view[['feature', ...]] for some of their features.",
    ),
    "service lists a feature twice": (
        lambda: FeatureService(name="model", features=[view(), view()[["amount_sum_1h"]]]),
        "feature service 'model': card_spend:amount_sum_1h is listed twice; list each feature once.",
    ),
    "selection of an unknown feature": (
        lambda: view()[["amount_total"]],
        "view 'card_spend' has no feature 'amount_total'; its features are amount_sum_1h.",
    ),
    "transform with two arguments": (
        lambda: row_transform(outputs={"x": pl.Int64})(lambda events, other: events),
        "transform '<lambda>': must take exactly one argument, the events frame (pl.DataFrame).",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_definition_has_its_own_clear_error(case: str) -> None:
    make, message = CASES[case]
    with pytest.raises(DefinitionError) as info:
        make()
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_every_message_is_distinct() -> None:
    assert len({message for _, message in CASES.values()}) == len(CASES)


def test_a_valid_view_builds_and_names_its_features() -> None:
    built = view(
        transform=to_usd,
        aggregations=[Aggregation("sum", "amount_usd", window="1h"), Aggregation("count", window="10m")],
    )
    assert built.schema == {"amount_usd_sum_1h": pl.Float64, "count_10m": pl.Int64}
