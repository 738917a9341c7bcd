"""A small HTTP client for `skewless serve`, for product backends written in Python.

``Client("http://127.0.0.1:6566", api_key=...).get_online_features(["card_activity:count_1h"],
{"card_id": ["c000001"]})``. Responses come back as ``OnlineResult`` (the same shape the
in-process SDK returns), and ``push`` takes what ``FeatureStore.push`` takes. Errors the server
explains (4xx/503) raise ``ClientError`` with its one-line detail, as do a server that cannot be
reached or does not answer in time; bad input the client can see raises before it is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import httpx

from skewless._errors import ExecutionError, SkewlessError
from skewless.online.push import events_frame
from skewless.online.read import OnlineResult, entity_row_count

__all__ = ["Client", "ClientError"]


class ClientError(SkewlessError):
    """The server refused the request (``status``: its HTTP status), or it could not be reached
    or did not answer in time (``status`` None)."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail if status is None else f"{status}: {detail}")
        self.status = status


class Client:
    """Calls /get-online-features and /push; keeps one connection pool."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:6566",
        *,
        api_key: str | None = None,
        timeout: float = 2.0,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = http or httpx.Client(base_url=url, timeout=timeout)
        self.http.headers.update(headers)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The server's JSON answer; a refusal, an unreachable server or no answer in time raise
        ``ClientError``, so a backend catches one exception whatever went wrong."""
        content = json.dumps(body, default=_json_value).encode()
        try:
            response = self.http.post(path, content=content, headers={"content-type": "application/json"})
        except httpx.TimeoutException as exc:
            raise ClientError(None, f"{self.http.base_url} did not answer {path} in time ({exc!r}).") from exc
        except httpx.TransportError as exc:
            raise ClientError(
                None, f"cannot reach {self.http.base_url} ({exc}); is `skewless serve` running there?"
            ) from exc
        if response.status_code != 200:
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text[:200]
            raise ClientError(response.status_code, detail)
        return dict(response.json())

    def get_online_features(
        self,
        features: Sequence[str] | str,
        entities: Mapping[str, Sequence[Any]],
        *,
        full_feature_names: bool = False,
        request_id: str | None = None,
        client_features: Mapping[str, Sequence[Any]] | None = None,
    ) -> OnlineResult:
        """Feature values with statuses for column-oriented ``entities``; ``features`` is a list
        of "view:feature" references or a feature service's name."""
        entity_row_count(entities)  # each a list: a string would be sent as one row per character
        body: dict[str, Any] = {
            **({"feature_service": features} if isinstance(features, str) else {"features": list(features)}),
            "entities": {k: list(v) for k, v in entities.items()},
            "full_feature_names": full_feature_names,
        }
        if request_id:
            body["request_id"] = request_id
        if client_features:
            body["client_features"] = {k: list(v) for k, v in client_features.items()}
        reply = self._post("/get-online-features", body)
        columns = reply["results"][len(entities) :]
        names = reply["metadata"]["feature_names"][len(entities) :]
        stamps = [
            [None if s.startswith("1970-01-01") else datetime.fromisoformat(s) for s in c["event_timestamps"]]
            for c in columns
        ]
        return OnlineResult(
            names, [c["values"] for c in columns], [c["statuses"] for c in columns], stamps, {}
        )

    def push(self, source: str, events: Any) -> int:
        """Send events to ``source``'s stream; returns how many the server accepted. ``events``:
        what ``FeatureStore.push`` takes (a polars or pandas DataFrame, or a list of dicts, one
        per event), or columns (a dict of lists, the ``df`` of Feast's push)."""
        if isinstance(events, Mapping):
            columns = {k: list(v) for k, v in events.items()}
        else:
            columns = events_frame(events).to_dict(as_series=False)
        return int(self._post("/push", {"push_source_name": source, "df": columns})["pushed"])

    def close(self) -> None:
        self.http.close()


def _json_value(value: object) -> str:
    """A value JSON has no type for: times as ISO 8601 (the server refuses one without a zone)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise ExecutionError(
        f"cannot send {value!r} ({type(value).__name__}) as JSON; give numbers, text or times."
    )
