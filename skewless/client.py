"""A small HTTP client for `skewless serve`, for product backends written in Python.

``Client("http://127.0.0.1:6566", api_key=...).get_online_features(["card_activity:count_1h"],
{"card_id": ["c000001"]})``. Responses come back as ``OnlineResult`` (the same shape the in-process SDK returns); errors the
server explains (4xx/503) raise ``ClientError`` with its one-line detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from skewless._errors import SkewlessError
from skewless.online.read import OnlineResult

__all__ = ["Client", "ClientError"]


class ClientError(SkewlessError):
    """The server refused the request; ``status`` is its HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
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
        response = self.http.post(path, json=body)
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

    def push(self, source: str, columns: Mapping[str, Sequence[Any]]) -> int:
        """Send events (column-oriented) to ``source``'s stream; returns how many were accepted."""
        return int(
            self._post("/push", {"push_source_name": source, "df": {k: list(v) for k, v in columns.items()}})[
                "pushed"
            ]
        )

    def close(self) -> None:
        self.http.close()
