"""The FastAPI app: Feast's ``/get-online-features`` request and response, plus push, health,
metrics. Errors map to statuses in one place (``_error``): bad input 4xx with a one-line detail,
Redis down 503 with a clear body; the app recovers by itself when Redis comes back."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field, ValidationError
from redis.commands.core import AsyncScript
from sqlalchemy import text

from skewless._errors import DefinitionError, ExecutionError, SkewlessError, StoreError
from skewless.feature_store import FeatureStore
from skewless.online.read import OnlineRead, OnlineResult
from skewless.service.auth import ApiKeys, AuthError
from skewless.service.serving_log import LOG_STREAM, log_header
from skewless.stores.online_read import READ_SCRIPT, script_args

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


class ValidationErrorBody(BaseModel):
    detail: list[dict[str, Any]] = Field(description="Where the body is malformed, and how.")


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI requestBody for ``model`` (for routes that parse their own body)."""
    return {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}


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


class _BodyLimit:
    """Answer 413 to a request whose declared body is over ``MAX_BODY_BYTES``, before it is read
    (plain ASGI: Starlette's BaseHTTPMiddleware costs a task group per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > MAX_BODY_BYTES:
                response = _error(
                    413, f"request body over {MAX_BODY_BYTES} bytes; send fewer entities per request."
                )
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class _ReadAndLog:
    """Runs an online read and logs it in one atomic round trip (``READ_SCRIPT``) on an asyncio
    client: one client per event loop (a test client may run each request in a loop of its own;
    uvicorn runs one loop per worker)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self._scripts: dict[asyncio.AbstractEventLoop, AsyncScript] = {}

    async def __call__(self, read: OnlineRead, header: bytes) -> list[Any]:
        loop = asyncio.get_running_loop()
        script = self._scripts.get(loop)
        if script is None:
            self._scripts = {used: s for used, s in self._scripts.items() if not used.is_closed()}
            client = redis.asyncio.Redis.from_url(self.store.redis_url, socket_connect_timeout=2)
            script = self._scripts[loop] = client.register_script(READ_SCRIPT)
        return list(await script(args=script_args(read.commands, LOG_STREAM, header)))


def _key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return (
        header.removeprefix("Bearer ").strip()
        if header.startswith("Bearer ")
        else request.headers.get("x-api-key")
    )


def _columns(entities: dict[str, list[Any]], count: int, result: OnlineResult) -> list[dict[str, list[Any]]]:
    """Feast's response columns: the join keys (PRESENT), then one column per feature."""
    columns = [
        {"values": list(values), "statuses": ["PRESENT"] * count, "event_timestamps": [_EPOCH] * count}
        for values in entities.values()
    ]
    formatted: dict[int, list[str]] = {}  # features of one view share their timestamps list
    for values, statuses, stamps in zip(result.values, result.statuses, result.event_timestamps, strict=True):
        times = formatted.get(id(stamps))
        if times is None:
            times = formatted[id(stamps)] = [
                s.isoformat().replace("+00:00", "Z") if s else _EPOCH for s in stamps
            ]
        columns.append({"values": values, "statuses": statuses, "event_timestamps": times})
    return columns


def create_app(store: FeatureStore, *, auth: bool = True) -> FastAPI:
    """The app serving ``store``; one per process (uvicorn workers each build their own).

    With ``auth`` (the default), /get-online-features needs a key with the read scope and /push
    one with the write scope; /health, /metrics and the docs stay open.
    """
    keys = ApiKeys(store.database) if auth else None

    async def authorize(request: Request, scope: str) -> None:
        if keys is None:
            return
        key = _key(request)
        if keys.is_cached(key):
            keys.verify(key, scope)
        else:  # a database lookup: off the event loop
            await run_in_threadpool(keys.verify, key, scope)

    def require(scope: str) -> Any:
        async def check(request: Request) -> None:
            await authorize(request, scope)

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

    app.add_middleware(_BodyLimit)
    read_and_log = _ReadAndLog(store)
    by_status = {
        status: served.labels(status) for status in ("PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE")
    }
    read_latency = latency.labels("get-online-features")
    read_ok = requests.labels("get-online-features", "200")

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
        response_model=OnlineFeaturesResponse,
        responses={**_ERRORS, 422: {"model": ValidationErrorBody, "description": "Malformed request body"}},
        openapi_extra={"requestBody": _json_body(OnlineFeaturesRequest)},
    )
    async def get_online_features(request: Request) -> Any:
        # Parsed here rather than by FastAPI's dependency machinery: this is the hot path.
        started = time.perf_counter()
        await authorize(request, "read")
        raw = await request.body()
        try:
            body = OnlineFeaturesRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False), body=raw) from None
        if body.feature_service is not None or not body.features:
            return _error(
                400,
                "give 'features' as a list of 'view:feature' references (feature services are not supported yet).",
            )
        sizes = {len(v) for v in body.entities.values()}
        if len(sizes) != 1 or not body.entities:
            return _error(400, "'entities' must map each join key to a list, all of the same length.")
        at = datetime.now(UTC)
        read = store.prepare_online_read(
            body.features, body.entities, full_feature_names=body.full_feature_names, at=at
        )
        request_id = body.request_id or uuid.uuid4().hex
        header = log_header(
            request_id,
            at,
            body.features,
            body.entities,
            body.full_feature_names,
            read.versions,
            body.client_features,
        )
        result = read.result(await read_and_log(read, header))  # logged before the answer
        payload = {
            "metadata": {"feature_names": [*body.entities, *result.names]},
            "results": _columns(body.entities, sizes.pop(), result),
            "request_id": request_id,
        }
        for status, count in collections.Counter(s for col in result.statuses for s in col).items():
            by_status[status].inc(count)
        read_latency.observe(time.perf_counter() - started)
        read_ok.inc()
        return Response(orjson.dumps(payload), media_type="application/json")  # the documented shape

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

    app = create_app(FeatureStore(), auth=os.environ.get("SKEWLESS_AUTH", "on") != "off")
    # Everything loaded so far (Feast, polars, the repo) lives as long as the worker: keep it out
    # of the garbage collector's full passes, whose pauses otherwise show up as latency spikes.
    gc.freeze()
    return app
