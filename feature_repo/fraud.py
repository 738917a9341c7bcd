"""Card-fraud features: what a card did in the last 10 minutes to 7 days, and who holds it.

Every feature is defined once here. skewless computes it offline (training sets, backfills) and
online (Redis) from this same code. `make demo` generates the data under data/.
"""

import polars as pl

from skewless import (
    Aggregation,
    Entity,
    EventSource,
    FeatureService,
    FeatureView,
    PlainView,
    expose_to_feast,
    row_transform,
)

UTC_TIME = pl.Datetime("us", "UTC")
USD_PER_UNIT = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}

card = Entity(name="card", join_key="card_id", description="A payment card.")
merchant = Entity(name="merchant", join_key="merchant_id", description="A card acceptor.")

transactions = EventSource(
    name="transactions",
    path="data/transactions.parquet",
    stream="transactions",
    event_time="event_time",
    ingest_time="ingest_time",
    event_id="event_id",
    allowed_lateness="1h",
    schema={
        "event_id": pl.String,
        "card_id": pl.String,
        "merchant_id": pl.String,
        "amount": pl.Float64,
        "currency": pl.String,
        "event_time": UTC_TIME,
        "ingest_time": UTC_TIME,
    },
    description="Card authorizations, one event per transaction attempt.",
)

card_profiles = EventSource(
    name="card_profiles",
    path="data/card_profiles.parquet",
    event_time="updated_at",
    schema={
        "card_id": pl.String,
        "credit_limit": pl.Float64,
        "country": pl.String,
        "card_type": pl.String,
        "updated_at": UTC_TIME,
    },
    description="One row per change of a card's profile.",
)


@row_transform(outputs={"amount_usd": pl.Float64, "is_night": pl.Boolean})
def enrich(events: pl.DataFrame) -> pl.DataFrame:
    """Amount in US dollars, and whether the transaction happened at night (00:00-05:59 UTC)."""
    rate = pl.col("currency").replace_strict(USD_PER_UNIT, default=None, return_dtype=pl.Float64)
    return events.with_columns(
        amount_usd=(pl.col("amount") * rate).round(2),
        is_night=pl.col("event_time").dt.hour() < 6,
    )


card_activity = FeatureView(
    name="card_activity",
    entities=[card],
    source=transactions,
    transform=enrich,
    aggregations=[
        Aggregation("count", window="10m"),
        Aggregation("count", window="1h"),
        Aggregation("count", window="24h"),
        Aggregation("sum", "amount_usd", window="1h"),
        Aggregation("sum", "amount_usd", window="24h"),
        Aggregation("mean", "amount_usd", window="7d"),
        Aggregation("max", "amount_usd", window="24h"),
        Aggregation("distinct_count", "merchant_id", window="24h"),
        Aggregation("sum", "is_night", window="7d", name="night_count_7d"),
        Aggregation("last", "amount_usd", window="7d"),
    ],
    ttl="7d",
    owner="fraud-ml@example.com",
    description="Velocity and spend of a card over sliding windows.",
    tags={"team": "fraud"},
)

merchant_activity = FeatureView(
    name="merchant_activity",
    entities=[merchant],
    source=transactions,
    transform=enrich,
    aggregations=[
        Aggregation("count", window="1h"),
        Aggregation("mean", "amount_usd", window="24h"),
        Aggregation("distinct_count", "card_id", window="24h"),
    ],
    ttl="1d",
    owner="fraud-ml@example.com",
    description="How busy a merchant is, and how much its customers spend.",
)

card_profile = PlainView(
    name="card_profile",
    entities=[card],
    source=card_profiles,
    features=["credit_limit", "country", "card_type"],
    owner="fraud-ml@example.com",
    description="The latest profile of a card.",
)

fraud_model = FeatureService(
    name="fraud_model",
    features=[card_activity, card_profile[["credit_limit", "country"]]],
    owner="fraud-ml@example.com",
    description="What the fraud model reads when it scores a transaction.",
)

expose_to_feast(globals())
