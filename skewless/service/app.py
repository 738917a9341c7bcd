"""The API: Feast's ``/get-online-features`` request and response, plus push, health, metrics.

``ServingApp`` answers ``POST /get-online-features`` itself (``OnlineFeatures``, the hot path) and
hands every other request to the FastAPI app, which documents all routes in OpenAPI. Errors map
to statuses in one place (``error_answer``): bad input 4xx with a one-line detail, Redis down 503
with a clear body; the app recovers by itself when Redis comes back."""

from __future__ import annotations

import gc
from typing import Any

import redis
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text

from skewless._errors import DefinitionError, ExecutionError, StoreError
from skewless.feature_store import FeatureStore
from skewless.service.auth import ApiKeys, AuthError, request_key
from skewless.service.metrics import ServiceMetrics
from skewless.service.online_features import (
    TOO_LARGE,
    OnlineFeatures,
    OnlineFeaturesRequest,
    error_answer,
    json_answer,
    read_body,
    send_answer,
    too_large,
)

__all__ = ["PushRequest", "ServingApp", "create_app"]

ONLINE_FEATURES = "/get-online-features"


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


def _answer(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _answer(*json_answer(status, message))


class ServingApp:
    """The ASGI app: ``POST /get-online-features`` straight to ``online_features``, everything
    else to the FastAPI app ``api``. A body over ``MAX_BODY_BYTES`` gets 413: unread when its
    size is declared, else (chunked) once it has grown past it; the hot path checks that itself."""

    def __init__(self, api: FastAPI, online_features: OnlineFeatures) -> None:
        self.api = api
        self.online_features = online_features

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST" and scope["path"] == scope.get("root_path", "") + ONLINE_FEATURES:
                return await self.online_features(scope, receive, send)  # it checks the size itself
            headers = dict(scope["headers"])
            if too_large(headers.get(b"content-length", b"").decode("latin-1")):
                return await send_answer(send, *json_answer(413, TOO_LARGE))
            if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
                body = await read_body(receive)
                if body is None:
                    return await send_answer(send, *json_answer(413, TOO_LARGE))
                receive = _replaying(body, receive)
        await self.api(scope, receive, send)


def _replaying(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that gives the already read ``body``, then whatever comes next (a
    disconnect)."""
    given = False

    async def replay() -> dict[str, Any]:
        nonlocal given
        if given:
            return dict(await receive())
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def create_app(store: FeatureStore, *, auth: bool = True) -> ServingApp:
    """The app serving ``store``; one per process (uvicorn workers each build their own).

    With ``auth`` (the default), /get-online-features needs a key with the read scope and /push
    one with the write scope; /health, /metrics and the docs stay open.
    """
    keys = ApiKeys(store.database) if auth else None

    def require(scope: str) -> Any:
        async def check(request: Request) -> None:
            if keys is not None:
                await keys.verify_async(request_key(request.headers), scope)

        return Depends(check)

    app = FastAPI(
        title="skewless",
        version="0.1.0",
        description="Feature serving with one definition online and offline.",
    )
    metrics = ServiceMetrics(store)
    online_features = OnlineFeatures(store, keys, metrics)

    async def known_error(_: Request, exc: Exception) -> Response:
        status, message = error_answer(exc) or (500, "internal error")
        return _error(status, message)

    for error in (AuthError, DefinitionError, ExecutionError, StoreError, redis.RedisError):
        app.add_exception_handler(error, known_error)

    @app.post(
        ONLINE_FEATURES,
        summary="Feast-compatible online features",
        response_model=OnlineFeaturesResponse,
        responses={**_ERRORS, 422: {"model": ValidationErrorBody, "description": "Malformed request body"}},
        openapi_extra={"requestBody": _json_body(OnlineFeaturesRequest)},
    )
    async def get_online_features(request: Request) -> Response:
        # ServingApp answers this path before FastAPI; this route documents it, and answers
        # alike when the FastAPI app is mounted on its own.
        return _answer(*await online_features.respond(await request.body(), request_key(request.headers)))

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
        if len({len(column) for column in body.df.values()}) > 1:
            return _error(400, "'df' must map each column to a list, all of the same length.")
        pushed = store.push(
            body.push_source_name,
            [dict(zip(body.df, row, strict=True)) for row in zip(*body.df.values(), strict=True)],
        )
        metrics.requests.labels("push", "200").inc()
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
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return ServingApp(app, online_features)


def create_app_from_env() -> ServingApp:
    """App factory for uvicorn workers: settings from the environment (SKEWLESS_REPO etc.);
    SKEWLESS_AUTH=off serves without API keys (the demo)."""
    import os

    app = create_app(FeatureStore(), auth=os.environ.get("SKEWLESS_AUTH", "on") != "off")
    # Everything loaded so far (Feast, polars, the repo) lives as long as the worker: keep it out
    # of the garbage collector's full passes, whose pauses otherwise show up as latency spikes.
    gc.freeze()
    return app
