"""The serving log: every vector the API serves, appended to a Redis Stream before it answers.

The API reads and logs in one atomic script (``READ_SCRIPT``): the stream entry
(``skewless:serving_log``) holds the request — id, time, feature refs, entity rows, definition
version of each view, features the client computed itself — as orjson (``h``), and the raw Redis
replies it was served from as msgpack (``r``). So logging costs no extra round trip, and what was
served is exactly what was logged. (A full Redis, or a read-only replica, refuses the entry and
the vector is served anyway, counted in ``skewless_serving_log_refused_total``.) ``skewless
log-worker`` decodes the replies, with the code the API answered with, into hourly parquet
partitions of the offline store (``data/serving_log/hour=YYYY-MM-DDTHH/``) and acknowledges
entries only after the file is written (then trims what it moved from the stream), so a crash
of either process loses no logged vector. An entry whose views changed definition before it
was moved is kept whole in ``skewless:serving_log:dead`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import msgpack
import orjson
import polars as pl
import redis

from skewless._errors import SkewlessError
from skewless.online.consumers import forget_idle
from skewless.online.read import OnlineResult
from skewless.stores.stream_trim import trim_acknowledged

if TYPE_CHECKING:
    from skewless.feature_store import FeatureStore

__all__ = ["LOG_DEAD", "LOG_GROUP", "LOG_STREAM", "drain_serving_log", "log_header"]

LOG_STREAM = "skewless:serving_log"
LOG_DEAD = f"{LOG_STREAM}:dead"
LOG_GROUP = "log-worker"

_SCHEMA = pl.Schema(
    {
        "entry_id": pl.String(),
        "request_id": pl.String(),
        "request_time": pl.Datetime("us", "UTC"),
        "entity": pl.String(),
        "features": pl.String(),
        "statuses": pl.String(),
        "versions": pl.String(),
        "client_features": pl.String(),
    }
)


def log_header(
    request_id: str,
    at: datetime,
    features: list[str],
    entities: dict[str, list[Any]],
    full_feature_names: bool,
    versions: dict[str, str],
    client_features: dict[str, list[Any]] | None,
    logged: list[str],
) -> bytes:
    """The request part of a log entry: enough to rebuild the read and decode its replies, and
    which views' values to keep (``logged``: the views whose sample rate drew this request)."""
    return orjson.dumps(
        {
            "request_id": request_id,
            "at": at.isoformat(),
            "features": features,
            "entities": entities,
            "full_feature_names": full_feature_names,
            "versions": versions,
            "client_features": client_features or {},
            "logged": logged,
        },
        default=str,
    )


def _nils(reply: Any) -> Any:
    """Lua's nil is false inside msgpack; back to None."""
    if reply is False:
        return None
    if isinstance(reply, list):
        return [_nils(r) for r in reply]
    return reply


def _decode(store: FeatureStore, header: dict[str, Any], raw: bytes) -> OnlineResult | str:
    """The vector served for a logged request, or why it cannot be decoded any more."""
    try:
        read = store.prepare_online_read(
            header["features"],
            header["entities"],
            full_feature_names=header["full_feature_names"],
            at=datetime.fromisoformat(header["at"]),
        )
    except SkewlessError as exc:
        return f"the repo no longer serves this request: {exc}"
    if read.versions != header["versions"]:
        return "a view's definition changed before the entry was moved offline; decode it with that version."
    result = read.result(_nils(msgpack.unpackb(raw, raw=True)))
    logged = set(header.get("logged", read.versions))
    keep = [i for i, view in enumerate(read.column_views) if view in logged]
    return OnlineResult(
        [result.names[i] for i in keep],
        [result.values[i] for i in keep],
        [result.statuses[i] for i in keep],
        [result.event_timestamps[i] for i in keep],
        {view: version for view, version in result.versions.items() if view in logged},
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _rows(entry_id: str, header: dict[str, Any], result: OnlineResult) -> list[dict[str, Any]]:
    """One parquet row per entity row of a logged request."""
    entities, client = header["entities"], header["client_features"]
    return [
        {
            "entry_id": entry_id,
            "request_id": header["request_id"],
            "request_time": datetime.fromisoformat(header["at"]),
            "entity": _json({k: v[i] for k, v in entities.items()}),
            "features": _json(dict(zip(result.names, (c[i] for c in result.values), strict=True))),
            "statuses": _json(dict(zip(result.names, (c[i] for c in result.statuses), strict=True))),
            "versions": _json(result.versions),
            "client_features": _json({k: v[i] for k, v in client.items()}),
        }
        for i in range(len(next(iter(entities.values()), [])))
    ]


def _entry_rows(
    store: FeatureStore, entry_id: bytes, fields: dict[bytes, bytes]
) -> list[dict[str, Any]] | str:
    """A log entry's parquet rows, or why it cannot be moved. An entry this worker cannot read
    (another writer's, a version's that logged differently) must not stop it: every entry
    after it would wait behind it."""
    try:
        header = orjson.loads(fields[b"h"])
        result = _decode(store, header, fields[b"r"])
        return result if isinstance(result, str) else _rows(entry_id.decode(), header, result)
    # What malformed input raises here (msgpack's and orjson's errors are ValueErrors).
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        return f"malformed log entry: {type(exc).__name__}: {exc}"


def drain_serving_log(
    store: FeatureStore,
    consumer: str,
    *,
    count: int = 1000,
    block_ms: int = 200,
    claim_idle_ms: int = 30_000,
    on_dead_letter: Callable[[str, str], None] = lambda entry_id, reason: None,
) -> int:
    """Move one batch of logged requests into hourly parquet files; returns the entries handled
    (moved, or kept in ``LOG_DEAD``).

    Entries this consumer read before come first, then entries a dead worker left unacknowledged
    for ``claim_idle_ms``, then new ones; when there is nothing to claim, workers idle that long
    with nothing pending leave the group (online/consumers.py). An entry that cannot be moved is
    kept in ``LOG_DEAD`` with the reason, and ``on_dead_letter`` hears its id and the reason."""
    client = store.redis
    try:
        client.xgroup_create(LOG_STREAM, LOG_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    reply: Any = client.xreadgroup(LOG_GROUP, consumer, {LOG_STREAM: "0"}, count=count) or []
    entries = reply[0][1] if reply and reply[0][1] else []
    if not entries:
        claimed = cast(
            list[Any], client.xautoclaim(LOG_STREAM, LOG_GROUP, consumer, claim_idle_ms, "0-0", count=count)
        )[1]
        entries = [entry for entry in claimed if entry[1] is not None]
        if not entries:  # nothing left to claim: workers that died can leave the group
            forget_idle(client, LOG_STREAM, LOG_GROUP, idle_ms=claim_idle_ms, keep={consumer})
    if not entries:
        reply = client.xreadgroup(LOG_GROUP, consumer, {LOG_STREAM: ">"}, count=count, block=block_ms) or []
        entries = reply[0][1] if reply else []
    if not entries:
        return 0
    rows: list[dict[str, Any]] = []
    for entry_id, fields in entries:
        moved = _entry_rows(store, entry_id, fields)
        if isinstance(moved, str):  # kept whole, with the reason: nothing is dropped
            client.xadd(LOG_DEAD, {**fields, b"reason": moved.encode()})
            on_dead_letter(entry_id.decode(), moved)
            continue
        rows.extend(moved)
    frame = pl.DataFrame(rows, schema=_SCHEMA)
    for (hour,), part in frame.group_by(
        pl.col("request_time").dt.truncate("1h").dt.strftime("%Y-%m-%dT%H"), maintain_order=True
    ):
        directory = store.settings.repo / "data" / "serving_log" / f"hour={hour}"
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{part['entry_id'][0].replace('-', '_')}.parquet"
        part.write_parquet(target.with_suffix(".tmp"))
        target.with_suffix(".tmp").replace(target)  # a redelivered batch rewrites the same file
    client.xack(LOG_STREAM, LOG_GROUP, *[entry_id for entry_id, _ in entries])
    trim_acknowledged(client, LOG_STREAM)  # moved: Redis need not keep them
    return len(entries)
