"""The serving log: every vector the API serves, appended to a Redis Stream before it answers.

One stream entry per request (``skewless:serving_log``), orjson-encoded: request id and time,
the entity rows, feature names, values, statuses, the definition version of each view, and any
features the client computed itself. ``skewless log-worker`` moves entries into hourly parquet
partitions of the offline store (``data/serving_log/hour=YYYY-MM-DDTHH/``) and acknowledges them
only after the file is written, so a crash of either process loses no logged vector.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import redis

__all__ = ["LOG_GROUP", "LOG_STREAM", "drain_serving_log", "log_entry"]

LOG_STREAM = "skewless:serving_log"
LOG_GROUP = "log-worker"


def log_entry(
    request_id: str,
    at: datetime,
    entities: dict[str, list[Any]],
    names: list[str],
    values: list[list[Any]],
    statuses: list[list[str]],
    versions: dict[str, str],
    client_features: dict[str, list[Any]] | None,
) -> dict[str, bytes]:
    """The stream fields of one served request."""
    payload = {
        "request_id": request_id,
        "at": at.isoformat(),
        "entities": entities,
        "features": names,
        "values": values,
        "statuses": statuses,
        "versions": versions,
        "client_features": client_features or {},
    }
    return {"v": orjson.dumps(payload, default=str)}


def drain_serving_log(
    client: redis.Redis,
    repo_root: Path,
    consumer: str,
    *,
    count: int = 1000,
    block_ms: int = 200,
    claim_idle_ms: int = 30_000,
) -> int:
    """Move one batch of logged requests into hourly parquet files; returns entries moved.

    Entries this consumer read before come first, then entries a dead worker left unacknowledged
    for ``claim_idle_ms``, then new ones."""
    try:
        client.xgroup_create(LOG_STREAM, LOG_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    reply = client.xreadgroup(LOG_GROUP, consumer, {LOG_STREAM: "0"}, count=count) or []
    entries = reply[0][1] if reply and reply[0][1] else []
    if not entries:
        claimed = client.xautoclaim(LOG_STREAM, LOG_GROUP, consumer, claim_idle_ms, "0-0", count=count)[1]
        entries = [entry for entry in claimed if entry[1] is not None]
    if not entries:
        reply = client.xreadgroup(LOG_GROUP, consumer, {LOG_STREAM: ">"}, count=count, block=block_ms) or []
        entries = reply[0][1] if reply else []
    if not entries:
        return 0
    rows = []
    for entry_id, fields in entries:
        payload = orjson.loads(fields[b"v"])
        for i in range(len(next(iter(payload["entities"].values()), []))):
            rows.append(
                {
                    "entry_id": entry_id.decode(),
                    "request_id": payload["request_id"],
                    "request_time": datetime.fromisoformat(payload["at"]),
                    "entity": orjson.dumps({k: v[i] for k, v in payload["entities"].items()}).decode(),
                    "features": orjson.dumps(
                        dict(zip(payload["features"], (col[i] for col in payload["values"]), strict=True))
                    ).decode(),
                    "statuses": orjson.dumps(
                        dict(zip(payload["features"], (col[i] for col in payload["statuses"]), strict=True))
                    ).decode(),
                    "versions": orjson.dumps(payload["versions"]).decode(),
                    "client_features": orjson.dumps(
                        {k: v[i] for k, v in payload["client_features"].items()}
                    ).decode(),
                }
            )
    frame = pl.DataFrame(
        rows,
        schema={
            "entry_id": pl.String,
            "request_id": pl.String,
            "request_time": pl.Datetime("us", "UTC"),
            "entity": pl.String,
            "features": pl.String,
            "statuses": pl.String,
            "versions": pl.String,
            "client_features": pl.String,
        },
    )
    for (hour,), part in frame.group_by(
        pl.col("request_time").dt.truncate("1h").dt.strftime("%Y-%m-%dT%H"), maintain_order=True
    ):
        directory = repo_root / "data" / "serving_log" / f"hour={hour}"
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{part['entry_id'][0].replace('-', '_')}.parquet"
        part.write_parquet(target.with_suffix(".tmp"))
        target.with_suffix(".tmp").replace(target)  # a redelivered batch rewrites the same file
    client.xack(LOG_STREAM, LOG_GROUP, *[entry_id for entry_id, _ in entries])
    return len(entries)
