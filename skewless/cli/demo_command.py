"""``demo``: the whole story on the example repo, on embedded defaults, in one command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from rich.table import Table

from skewless.cli._common import RepoOption, console
from skewless.cli.data_commands import generate
from skewless.cli.online_commands import materialize
from skewless.cli.repo_commands import apply, plan
from skewless.feature_store import FeatureStore
from skewless.settings import Settings
from skewless.stores.online_read import PRESENT

__all__ = ["demo"]

_TRAINING_FEATURES = [
    "card_activity:count_1h",
    "card_activity:amount_usd_sum_24h",
    "card_activity:merchant_id_distinct_count_24h",
    "card_profile:country",
]


def _show(title: str, frame: pl.DataFrame) -> None:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(column)
    for row in frame.iter_rows():
        table.add_row(*[_cell(v) for v in row])
    console.print(table)


def _cell(value: object) -> str:
    """A value as the demo shows it: a float sum read from Redis carries the last bits of its
    additions (2329.5600000000004); six decimals say what it is."""
    if value is None:
        return ""
    return str(round(value, 6)) if isinstance(value, float) else str(value)


def _stream(store: FeatureStore, card: str) -> None:
    """Push events for one card through its stream, ingest them, and show its online values
    change — equal to the offline executor's at the same moment, over the history the ingest
    landed: one definition, two executors. An event three hours old is too late for the
    source's allowed lateness (1 h) and is dead-lettered with the reason, not dropped."""
    now = datetime.now(UTC)
    times = [now - timedelta(seconds=s) for s in (30, 20, 10)] + [now - timedelta(hours=3)]
    events = pl.DataFrame({
        "event_id": [f"demo-{now:%Y%m%d%H%M%S%f}-{i}" for i in range(4)],
        "card_id": [card] * 4,
        "merchant_id": ["m00001", "m00002", "m00001", "m00003"],
        "amount": [12.5, 40.0, 7.25, 99.0],
        "currency": ["USD"] * 4,
        "event_time": times,
    })  # fmt: skip
    features = _TRAINING_FEATURES[:3]
    before = store.get_online_features(features, {"card_id": [card]})
    store.push("transactions", events)
    ingestor = store.ingestor(["transactions"])
    while ingestor.step():
        pass
    ingestor.close()
    after = store.get_online_features(features, {"card_id": [card]})
    offline = store.get_historical_features(
        pl.DataFrame({"card_id": [card], "event_timestamp": [datetime.now(UTC)]}), features, as_available=True
    )
    _show(
        f"Streamed 4 events of {card} through skewless ingest's path: online before, after, and offline now",
        pl.DataFrame({
            "feature": after.names,
            "online before": [_cell(v[0]) for v in before.values],
            "online after": [_cell(v[0]) for v in after.values],
            "offline now": [_cell(offline[name][0]) for name in after.names],
        }),
    )  # fmt: skip
    stats = ingestor.stats
    console.print(
        f"Applied {stats.applied} events; dead-lettered {stats.dead_lettered} (too late): "
        "[bold]skewless dead-letters[/] shows it with the reason."
    )


def demo(repo: RepoOption = None) -> None:
    """Run the end-to-end demo on the example repo: generate data, apply, build a training set,
    materialize into Redis, read online features, stream events and read them online and offline,
    and plan again (no changes)."""
    settings = Settings.load(repo)
    if not (settings.repo / "data" / "transactions.parquet").exists():
        generate(repo=settings.repo)
    apply(repo=settings.repo)
    store = FeatureStore(settings=settings)
    events = pl.read_parquet(
        settings.repo / "data" / "transactions.parquet", columns=["card_id", "event_time"]
    )
    entities = events.sample(10_000, seed=1).select(
        "card_id", (pl.col("event_time") + pl.duration(minutes=1)).alias("event_timestamp")
    )
    out = settings.repo / "data" / "demo_training_set.parquet"
    built = store.create_training_set(entities, _TRAINING_FEATURES, out, name="demo")
    console.print(f"Training set #{built.id}: {built.rows:,} point-in-time correct rows in {out}.")
    _show("A few training rows (features as of each row's time)", pl.read_parquet(out).head(5))
    materialize(repo=settings.repo)
    cards = events["card_id"].value_counts(sort=True)["card_id"].head(3).to_list() + ["c_unknown"]
    online = store.get_online_features(_TRAINING_FEATURES, {"card_id": cards})
    rows = {"card_id": cards} | {
        name: [_cell(v) if status == PRESENT else status for v, status in zip(values, statuses, strict=True)]
        for name, values, statuses in zip(online.names, online.values, online.statuses, strict=True)
    }
    _show("Online features now, read from Redis (a status where there is no value)", pl.DataFrame(rows))
    _stream(store, cards[0])
    plan(repo=settings.repo)
    console.print(
        "Next: [bold]skewless serve --no-auth --repo feature_repo[/] and POST /get-online-features; "
        "[bold]skewless ingest[/] to stream events; see README.md."
    )
    store.close()
