"""The FastAPI app: Feast's ``/get-online-features`` request and response, plus push, health,
metrics. Errors map to statuses in one place (``_error``): bad input 4xx with a one-line detail,
Redis down 503 with a clear body; the app recovers by itself when Redis comes back."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field
from sqlalchemy import text

from skewless._errors import DefinitionError, ExecutionError, SkewlessError, StoreError
from skewless.feature_store import FeatureStore
from skewless.service.auth import ApiKeys, AuthError
from skewless.service.serving_log import LOG_STREAM, log_entry

__all__ = ["OnlineFeaturesRequest", "PushRequest", "create_app"]

_EPOCH = "1970-01-01T00:00:00Z"
#: Largest request body accepted (bytes); larger ones get 413 before they are parsed.
MAX_BODY_BYTES = 1_048_576


class OnlineFeaturesRequest(BaseModel):
    """Feast's feature-server request, plus skewless's optional ``request_id`` and ``client_features``."""

    features: list[str] | None = Field(
        default=None, description="Feature references, 'view:feature'.", max_length=1000
    )
    feature_service: str | None = Field(default=None, description="Not supported yet: list features instead.")
    entities: dict[str, list[str | int]] = Field(
        description="Join key → one value per entity row (column-oriented)."
    )
    full_feature_names: bool = False
    request_id: str | None = Field(default=None, max_length=200)
    client_features: dict[str, list[Any]] | None = Field(
        default=None, description="Values the caller computed itself, logged for the skew monitor."
    )


class Metadata(BaseModel):
    feature_names: list[str]


class FeatureColumn(BaseModel):
    values: list[Any]
    statuses: list[str] = Field(
        description="PRESENT, NULL_VALUE, NOT_FOUND or OUTSIDE_MAX_AGE per entity row."
    )
    event_timestamps: list[str]


class OnlineFeaturesResponse(BaseModel):
    """Feast's column-oriented response: the join keys first, then one column per feature."""

    metadata: Metadata
    results: list[FeatureColumn]
    request_id: str


class PushResponse(BaseModel):
    pushed: int


class ErrorBody(BaseModel):
    detail: str = Field(description="One line: what is wrong and what to do.")


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "Bad input (unknown feature, wrong entity type, ...)",
        401: "Missing or unknown API key",
        403: "The API key lacks the scope",
        413: "Request body too large",
        503: "The online store is unreachable; retry",
    }.items()
}


class PushRequest(BaseModel):
    """Events for a source's stream (Feast's push shape: ``push_source_name`` and ``df`` columns)."""

    push_source_name: str
    df: dict[str, list[Any]]
    to: str = "online"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


def _key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return (
        header.removeprefix("Bearer ").strip()
        if header.startswith("Bearer ")
        else request.headers.get("x-api-key")
    )


def create_app(store: FeatureStore, *, auth: bool = True) -> FastAPI:
    """The app serving ``store``; one per process (uvicorn workers each build their own).

    With ``auth`` (the default), /get-online-features needs a key with the read scope and /push
    one with the write scope; /health, /metrics and the docs stay open.
    """
    keys = ApiKeys(store.database) if auth else None

    def require(scope: str) -> Any:
        def check(request: Request) -> None:
            if keys is not None:
                keys.verify(_key(request), scope)

        return Depends(check)

    app = FastAPI(
        title="skewless",
        version="0.1.0",
        description="Feature serving with one definition online and offline.",
    )
    registry = CollectorRegistry()
    requests = Counter(
        "skewless_requests", "Requests by endpoint and outcome", ["endpoint", "code"], registry=registry
    )
    latency = Histogram(
        "skewless_request_seconds",
        "Request latency",
        ["endpoint"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
    )
    served = Counter("skewless_feature_values", "Served values by status", ["status"], registry=registry)
    ingest_lag = Gauge(
        "skewless_ingest_lag",
        "Stream entries not yet delivered to `skewless ingest`",
        ["stream"],
        registry=registry,
    )
    streams = sorted({str(v.source.stream) for v in store.repo.views.values() if v.source.stream})
    backlog = Gauge(
        "skewless_serving_log_backlog", "Serving log entries not yet moved offline", registry=registry
    )

    @app.middleware("http")
    async def _limit_size(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes; send fewer entities per request.")
        return await call_next(request)

    @app.exception_handler(AuthError)
    async def _unauthorized(_: Request, exc: AuthError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(DefinitionError)
    @app.exception_handler(ExecutionError)
    async def _bad_input(_: Request, exc: SkewlessError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StoreError)
    async def _store_down(_: Request, exc: StoreError) -> JSONResponse:
        return _error(503, f"online store unavailable: {exc}")

    @app.exception_handler(redis.RedisError)
    async def _redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
        return _error(503, f"online store unavailable: {exc}; retry shortly")

    @app.post(
        "/get-online-features",
        summary="Feast-compatible online features",
        dependencies=[require("read")],
        response_model=OnlineFeaturesResponse,
        responses=_ERRORS,
    )
    def get_online_features(body: OnlineFeaturesRequest) -> Any:
        started = time.perf_counter()
        if body.feature_service is not None or not body.features:
            return _error(
                400,
                "give 'features' as a list of 'view:feature' references (feature services are not supported yet).",
            )
        sizes = {len(v) for v in body.entities.values()}
        if len(sizes) != 1 or not body.entities:
            return _error(400, "'entities' must map each join key to a list, all of the same length.")
        at = datetime.now(UTC)
        result = store.get_online_features(
            body.features, body.entities, full_feature_names=body.full_feature_names, at=at
        )
        request_id = body.request_id or uuid.uuid4().hex
        store.redis.xadd(
            LOG_STREAM,
            log_entry(
                request_id,
                at,
                body.entities,
                result.names,
                result.values,
                result.statuses,
                result.versions,
                body.client_features,
            ),
        )
        count = sizes.pop()
        results = [
            {"values": list(values), "statuses": ["PRESENT"] * count, "event_timestamps": [_EPOCH] * count}
            for values in body.entities.values()
        ]
        for values, statuses, stamps in zip(
            result.values, result.statuses, result.event_timestamps, strict=True
        ):
            results.append(
                {
                    "values": values,
                    "statuses": statuses,
                    "event_timestamps": [
                        s.isoformat().replace("+00:00", "Z") if s else _EPOCH for s in stamps
                    ],
                }
            )
            for status in statuses:
                served.labels(status).inc()
        latency.labels("get-online-features").observe(time.perf_counter() - started)
        requests.labels("get-online-features", "200").inc()
        payload = {
            "metadata": {"feature_names": [*body.entities, *result.names]},
            "results": results,
            "request_id": request_id,
        }
        return Response(
            orjson.dumps(payload), media_type="application/json"
        )  # already in the documented shape

    @app.post(
        "/push",
        summary="Send events to a source's stream",
        dependencies=[require("write")],
        response_model=PushResponse,
        responses=_ERRORS,
    )
    def push(body: PushRequest) -> Any:
        if body.to not in ("online", "online_and_offline"):
            return _error(
                400,
                "'to' must be 'online' or 'online_and_offline' (streamed events always land offline too).",
            )
        if len({len(column) for column in body.df.values()}) != 1:
            return _error(400, "'df' must map each column to a list, all of the same length.")
        pushed = store.push(
            body.push_source_name,
            [dict(zip(body.df, row, strict=True)) for row in zip(*body.df.values(), strict=True)],
        )
        requests.labels("push", "200").inc()
        return {"pushed": pushed}

    @app.get(
        "/health",
        summary="Redis, metadata DB and registry status",
        responses={503: {"description": "Redis or the metadata DB is unreachable"}},
    )
    def health() -> Any:
        checks = {"registry": f"{len(store.repo.views)} views"}
        try:
            store.redis.ping()
            checks["redis"] = "ok"
        except (redis.RedisError, StoreError) as exc:
            checks["redis"] = f"unreachable: {exc}"
        try:
            with store.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any driver error means "not reachable" here
            checks["database"] = f"unreachable: {type(exc).__name__}"
        healthy = checks["redis"] == "ok" and checks["database"] == "ok"
        return JSONResponse(
            status_code=200 if healthy else 503, content={"status": "ok" if healthy else "degraded", **checks}
        )

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        with contextlib.suppress(redis.RedisError):  # metrics must answer while Redis is down
            backlog.set(store.redis.xlen(LOG_STREAM))
            for stream in streams:
                groups = store.redis.xinfo_groups(stream) if store.redis.exists(stream) else []
                group = next((g for g in groups if g["name"] in (b"skewless", "skewless")), None)
                # Before `skewless ingest` first runs there is no group: every entry is waiting.
                ingest_lag.labels(stream).set(int(group["lag"] or 0) if group else store.redis.xlen(stream))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn workers: settings from the environment (SKEWLESS_REPO etc.);
    SKEWLESS_AUTH=off serves without API keys (the demo)."""
    import os

    return create_app(FeatureStore(), auth=os.environ.get("SKEWLESS_AUTH", "on") != "off")
