"""The API's Prometheus series.

With several uvicorn workers each process counts its own requests, so a scrape answered by one
worker must add up every worker's values: ``skewless serve`` sets PROMETHEUS_MULTIPROC_DIR
before its workers start, prometheus_client then keeps each process's values in files there, and
``exposition`` reads them all. (Importing Feast sets that variable too, to a directory of its
own, so every process that loads a repo counts this way.) Without it, the app's own registry
answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, cast

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from skewless.feature_store import FeatureStore
from skewless.online.consumers import alive
from skewless.online.dead_letters import dead_letter_counts
from skewless.service.serving_log import LOG_STREAM

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    """Request rate, latency and statuses, updated as requests are answered; serving-log backlog,
    ingest lag, live ingest processes and dead letters, read from Redis when /metrics is scraped."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "skewless_requests",
            "Requests by endpoint and outcome",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "skewless_request_seconds",
            "Request latency",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
        )
        self.served = Counter(
            "skewless_feature_values", "Served values by status", ["status"], registry=self.registry
        )
        self.unlogged = Counter(
            "skewless_serving_log_refused",
            "Served vectors not logged: Redis refused the log entry (full, or a read-only replica)",
            registry=self.registry,
        )
        self.ingest_lag = Gauge(
            "skewless_ingest_lag",
            "Stream entries not yet delivered to `skewless ingest`",
            ["stream"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # set by whichever worker answers the scrape
        )
        self.consumers = Gauge(
            "skewless_ingest_consumers",
            "`skewless ingest` processes alive on the stream (each marks itself every second)",
            ["stream"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.dead_letters = Gauge(
            "skewless_dead_letters",
            "Stream entries `skewless ingest` could not apply, ever, by kind of reason",
            ["stream", "reason"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.backlog = Gauge(
            "skewless_serving_log_backlog",
            "Serving log entries not yet moved offline",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.streams = sorted({str(v.source.stream) for v in store.repo.views.values() if v.source.stream})

    def exposition(self) -> bytes:
        """The text format, after reading the Redis gauges (skipped while Redis is down: metrics
        must answer then too)."""
        client = self.store.redis
        with contextlib.suppress(redis.RedisError):
            self.backlog.set(cast(int, client.xlen(LOG_STREAM)))
            for stream in self.streams:
                groups = (
                    cast(list[dict[str, Any]], client.xinfo_groups(stream)) if client.exists(stream) else []
                )
                group = next((g for g in groups if g["name"] in (b"skewless", "skewless")), None)
                # Before `skewless ingest` first runs there is no group: every entry is waiting.
                self.ingest_lag.labels(stream).set(
                    int(group["lag"] or 0) if group else cast(int, client.xlen(stream))
                )
                self.consumers.labels(stream).set(len(alive(client, stream)))
                for kind, count in dead_letter_counts(client, stream).items():
                    self.dead_letters.labels(stream, kind).set(count)
        if getattr(values.ValueClass, "_multiprocess", False):  # every process's values, from files
            registry = CollectorRegistry()
            registry.register(_OwnSeries())
            return generate_latest(registry)
        return generate_latest(self.registry)


class _OwnSeries(Collector):
    """Every process's ``skewless_*`` series from the multiprocess files (the directory also
    holds the series Feast defines when it is imported, which this API never updates)."""

    def collect(self) -> Iterable[Metric]:
        files = multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
        series = files.collect()  # type: ignore[no-untyped-call]
        return (m for m in series if m.name.startswith("skewless_"))
