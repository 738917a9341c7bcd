"""``POST /get-online-features``, the hot path, as a plain ASGI app.

Product backends call this endpoint, and little else, thousands of times a second. Profiled on
2 cores under load, FastAPI's and Starlette's layers around a route (error and exception
middleware, routing, dependency solving, request and response objects) took about as much CPU
as the whole read; so ``ServingApp`` (app.py) hands this one route to ``OnlineFeatures`` before
them. Every answer, errors included, comes from ``respond``: the FastAPI route of the same path
(which documents it in OpenAPI) calls it too.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from pydantic import BaseModel, Field, ValidationError

from skewless._errors import DefinitionError, ExecutionError, StoreError
from skewless.feature_store import FeatureStore
from skewless.online.read import OnlineRead, OnlineResult
from skewless.service.auth import ApiKeys, AuthError, request_key
from skewless.service.metrics import ServiceMetrics
from skewless.service.redis_pipe import RedisPipe, pack
from skewless.service.serving_log import LOG_STREAM, log_header
from skewless.stores.online_read import READ_SCRIPT, script_args

__all__ = [
    "MAX_BODY_BYTES",
    "TOO_LARGE",
    "OnlineFeatures",
    "OnlineFeaturesRequest",
    "error_answer",
    "json_answer",
    "read_body",
    "send_answer",
    "too_large",
]

_EPOCH = "1970-01-01T00:00:00Z"
#: Largest request body accepted (bytes); larger ones get 413, unread when they declare their size.
MAX_BODY_BYTES = 1_048_576
TOO_LARGE = f"request body over {MAX_BODY_BYTES} bytes; send fewer entities (or events) per request."
_JSON = [(b"content-type", b"application/json")]
_log = logging.getLogger(__name__)
_READ_SHA = hashlib.sha1(READ_SCRIPT.encode()).hexdigest()


class OnlineFeaturesRequest(BaseModel):
    """Feast's feature-server request, plus skewless's optional ``request_id`` and ``client_features``."""

    features: list[str] | None = Field(
        default=None, description="Feature references, 'view:feature'.", max_length=1000
    )
    feature_service: str | None = Field(
        default=None, description="A feature service's name: its features, instead of 'features'."
    )
    entities: dict[str, list[str | int]] = Field(
        description="Join key → one value per entity row (column-oriented)."
    )
    full_feature_names: bool = False
    request_id: str | None = Field(default=None, max_length=200)
    client_features: dict[str, list[Any]] | None = Field(
        default=None, description="Values the caller computed itself, logged for the skew monitor."
    )


def error_answer(exc: Exception) -> tuple[int, str] | None:
    """The status and one-line message the API answers for ``exc``; None for a bug (500)."""
    if isinstance(exc, AuthError):
        return exc.status, str(exc)
    if isinstance(exc, DefinitionError | ExecutionError):
        return 400, str(exc)
    if isinstance(exc, StoreError):
        return 503, f"online store unavailable: {exc}"
    if isinstance(exc, redis.RedisError):
        return 503, f"online store unavailable: {exc}; retry shortly"
    return None


def too_large(content_length: str) -> bool:
    """Whether a request's declared size is over ``MAX_BODY_BYTES`` (answered 413, unread)."""
    return content_length.isdigit() and int(content_length) > MAX_BODY_BYTES


def json_answer(status: int, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"detail": message})


async def send_answer(send: Any, status: int, body: bytes) -> None:
    """Send a whole JSON response through ASGI ``send``."""
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _ReadAndLog:
    """Runs an online read and logs it in one atomic round trip (``READ_SCRIPT``) on the running
    loop's ``RedisPipe`` (a test client may run each request in a loop of its own; uvicorn runs
    one loop per worker)."""

    def __init__(self, store: FeatureStore, on_unlogged: Callable[[str], None]) -> None:
        self.store = store
        self.on_unlogged = on_unlogged
        self._pipes: dict[asyncio.AbstractEventLoop, RedisPipe] = {}

    async def __call__(self, read: OnlineRead, header: bytes) -> list[Any]:
        """The replies of ``read``'s commands, logged with ``header`` unless it is empty. When
        Redis refuses the log entry (it is full, or a replica), ``on_unlogged`` hears why."""
        loop = asyncio.get_running_loop()
        pipe = self._pipes.get(loop)
        if pipe is None:
            self._pipes = {used: p for used, p in self._pipes.items() if not used.is_closed()}
            pipe = self._pipes[loop] = RedisPipe(self.store.redis_url)
        args = script_args(read.commands, LOG_STREAM if header else "", header)
        try:
            replies = list(await pipe.call(pack("EVALSHA", _READ_SHA, 0, *args)))
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            replies = list(await pipe.call(pack("EVAL", READ_SCRIPT, 0, *args)))  # Redis caches it now
        if not header:
            return replies
        *replies, logged = replies
        if logged != 1:
            self.on_unlogged(logged.decode() if isinstance(logged, bytes) else str(logged))
        return replies


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


async def read_body(receive: Any) -> bytes | None:
    """The request body, or None once it grows over ``MAX_BODY_BYTES`` (a chunked body declares
    no size up front)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class OnlineFeatures:
    """Answers Feast's online-features request: validate, read and log in one round trip, format."""

    def __init__(self, store: FeatureStore, keys: ApiKeys | None, metrics: ServiceMetrics) -> None:
        self.store = store
        self.keys = keys
        self._read_and_log = _ReadAndLog(store, self._unlogged)
        self._unlogged_count = metrics.unlogged
        self._warned_at = -math.inf
        self._served = {
            status: metrics.served.labels(status)
            for status in ("PRESENT", "NULL_VALUE", "NOT_FOUND", "OUTSIDE_MAX_AGE")
        }
        self._latency = metrics.latency.labels("get-online-features")
        self._outcomes = metrics.requests
        self._ok = metrics.requests.labels("get-online-features", "200")

    def _unlogged(self, reason: str) -> None:
        """Count a vector served but not logged, and say why in the server log, once a minute."""
        self._unlogged_count.inc()
        if time.monotonic() - self._warned_at >= 60:
            self._warned_at = time.monotonic()
            _log.warning("served vectors are not being logged: Redis refused the entry (%s)", reason)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        declared_too_large = too_large(headers.get("content-length", ""))
        body = None if declared_too_large else await read_body(receive)
        if body is None:
            status, answer = json_answer(413, TOO_LARGE)
        else:
            status, answer = await self.respond(body, request_key(headers))
        await send_answer(send, status, answer)
        self._latency.observe(time.perf_counter() - started)

    async def respond(self, raw: bytes, key: str | None) -> tuple[int, bytes]:
        """The status and JSON body for request body ``raw`` sent with API key ``key``."""
        try:
            answer = await self._answer(raw, key)
        except ValidationError as exc:
            answer = 422, b'{"detail":' + exc.json(include_url=False).encode() + b"}"
        except Exception as exc:
            known = error_answer(exc)
            if known is None:
                _log.exception("get-online-features failed")
                known = 500, f"internal error ({type(exc).__name__}); the server log has the traceback."
            answer = json_answer(*known)
        if answer[0] == 200:
            self._ok.inc()
        else:
            self._outcomes.labels("get-online-features", str(answer[0])).inc()
        return answer

    async def _answer(self, raw: bytes, key: str | None) -> tuple[int, bytes]:
        if self.keys is not None:
            await self.keys.verify_async(key, "read")
        body = OnlineFeaturesRequest.model_validate_json(raw)
        if (body.feature_service is None) == (not body.features):
            return json_answer(
                400,
                "give either 'features' (a list of 'view:feature' references) or 'feature_service' (a name).",
            )
        features = body.features or list(self.store.feature_refs(str(body.feature_service)))
        sizes = {len(v) for v in body.entities.values()}
        if len(sizes) != 1 or not body.entities:
            return json_answer(400, "'entities' must map each join key to a list, all of the same length.")
        rows = next(iter(sizes))
        uneven = [name for name, values in (body.client_features or {}).items() if len(values) != rows]
        if uneven:
            return json_answer(
                400, f"'client_features' '{uneven[0]}' must have one value per entity row ({rows})."
            )
        at = datetime.now(UTC)
        read = self.store.prepare_online_read(
            features, body.entities, full_feature_names=body.full_feature_names, at=at
        )
        request_id = body.request_id or os.urandom(16).hex()  # as random as uuid4, cheaper
        header = self._log_header(body, features, read, request_id, at)
        result = read.result(await self._read_and_log(read, header))  # logged before the answer
        for status, count in collections.Counter(s for col in result.statuses for s in col).items():
            self._served[status].inc(count)
        payload = {
            "metadata": {"feature_names": [*body.entities, *result.names]},
            "results": _columns(body.entities, rows, result),
            "request_id": request_id,
        }
        return 200, orjson.dumps(payload)

    def _log_header(
        self,
        body: OnlineFeaturesRequest,
        features: list[str],
        read: OnlineRead,
        request_id: str,
        at: datetime,
    ) -> bytes:
        """The request part of the log entry, or b"" when no view's sample rate drew it (one draw
        per request: views with equal rates are logged together)."""
        draw = random.random()
        logged = [view for view in read.versions if self.store.plans[view].log_sample_rate > draw]
        if not logged:
            return b""
        return log_header(
            request_id,
            at,
            features,
            body.entities,
            body.full_feature_names,
            read.versions,
            body.client_features,
            logged,
        )
