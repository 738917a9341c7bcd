"""The store-level online read: feature refs × entity rows → values, statuses, event times.

Entity rows are columnar, as in Feast's request (``{"card_id": ["c1", "c2"]}``); the result is
column-oriented like Feast's response, one column per requested feature, in request order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from skewless._errors import ExecutionError
from skewless.online.plain import read_plain_view
from skewless.repo.feature_refs import resolve_features
from skewless.repo.loader import Repo
from skewless.stores.online_read import OnlineRow, read_feature_view
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.dtypes import dtype_name

__all__ = ["OnlineResult", "read_online"]

_PYTHON_TYPES = {"String": (str,), "Int64": (int,), "Int32": (int,)}


@dataclass(frozen=True)
class OnlineResult:
    """Column-oriented features: ``values[i][j]`` is feature ``names[i]`` of entity row ``j``."""

    names: list[str]
    values: list[list[Any]]
    statuses: list[list[str]]
    event_timestamps: list[list[datetime | None]]
    versions: dict[str, str]


def _entity_columns(
    plan: ViewPlan, entity_rows: Mapping[str, Sequence[Any]], count: int
) -> list[tuple[Any, ...]]:
    columns = []
    for key, dtype in zip(plan.join_keys, plan.key_dtypes, strict=True):
        if key not in entity_rows:
            raise ExecutionError(
                f"view '{plan.name}' needs join key '{key}' in the entity rows; got {', '.join(entity_rows) or 'none'}."
            )
        values = list(entity_rows[key])
        if len(values) != count:
            raise ExecutionError(
                f"entity columns have different lengths ({key}: {len(values)}, expected {count})."
            )
        expected = _PYTHON_TYPES[dtype_name(dtype)]
        bad = [v for v in values if v is None or isinstance(v, bool) or not isinstance(v, expected)]
        if bad:
            raise ExecutionError(f"join key '{key}' must be {dtype} values; got {bad[0]!r}.")
        columns.append(values)
    return list(zip(*columns, strict=True))


def read_online(
    client: redis.Redis,
    repo: Repo,
    plans: Mapping[str, ViewPlan],
    project: str,
    features: Sequence[str],
    entity_rows: Mapping[str, Sequence[Any]],
    *,
    at_us: int,
    full_feature_names: bool = False,
) -> OnlineResult:
    """Values of ``features`` ("view:feature") for each entity row, as of ``at_us``; ``plans`` are
    the compiled views (compiled once, not per request)."""
    grouped = resolve_features(repo, features)
    count = len(next(iter(entity_rows.values()), []))
    names: list[str] = []
    values: list[list[Any]] = []
    statuses: list[list[str]] = []
    stamps: list[list[datetime | None]] = []
    versions: dict[str, str] = {}
    for view_name, wanted in grouped.items():
        plan = plans[view_name]
        versions[view_name] = plan.version
        entities = _entity_columns(plan, entity_rows, count)
        read = read_feature_view if plan.kind == "feature_view" else None
        rows: list[OnlineRow] = (
            read(client, plan, entities, at_us)
            if read
            else read_plain_view(client, plan, project, entities, at_us)
        )
        times = [None if r.event_us is None else datetime.fromtimestamp(r.event_us / 1e6, UTC) for r in rows]
        for feature in wanted:
            names.append(f"{view_name}__{feature}" if full_feature_names else feature)
            values.append([r.values[feature] for r in rows])
            statuses.append([r.statuses[feature] for r in rows])
            stamps.append(times)
    return OnlineResult(names, values, statuses, stamps, versions)
