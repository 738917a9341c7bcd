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
from skewless.online.plain import plain_view_read
from skewless.repo.feature_refs import resolve_features
from skewless.repo.loader import Repo
from skewless.stores.online_read import ViewRead, feature_view_read, run_commands, split_replies
from skewless.transforms.compiled import ViewPlan
from skewless.transforms.dtypes import dtype_name

__all__ = ["OnlineRead", "OnlineResult", "entity_row_count", "prepare_read", "read_online"]

_PYTHON_TYPES = {"String": (str,), "Int64": (int,), "Int32": (int,)}


@dataclass(frozen=True)
class OnlineResult:
    """Column-oriented features: ``values[i][j]`` is feature ``names[i]`` of entity row ``j``."""

    names: list[str]
    values: list[list[Any]]
    statuses: list[list[str]]
    event_timestamps: list[list[datetime | None]]
    versions: dict[str, str]


def entity_row_count(entity_rows: Mapping[str, Sequence[Any]]) -> int:
    """How many entity rows there are; each column must be a list (a string is not: it would
    read as one row per character)."""
    for key, values in entity_rows.items():
        if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
            raise ExecutionError(
                f"entity rows: '{key}' must be a list with a value per entity row, e.g. {{'{key}': [...]}}; "
                f"got {type(values).__name__}."
            )
    return len(next(iter(entity_rows.values()), []))


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


@dataclass(frozen=True)
class OnlineRead:
    """A prepared online read: every view's Redis commands, and how their replies become the result.

    Built without I/O, so the SDK runs it on a blocking client (``read_online``) and the API on an
    asyncio one, through the same code."""

    reads: list[ViewRead]
    wanted: dict[str, list[str]]
    versions: dict[str, str]
    full_feature_names: bool

    @property
    def column_views(self) -> list[str]:
        """The view of each column of ``result``, in order."""
        return [read.view for read in self.reads for _ in self.wanted[read.view]]

    @property
    def commands(self) -> list[tuple[Any, ...]]:
        return [command for read in self.reads for command in read.commands]

    def result(self, replies: Sequence[Any]) -> OnlineResult:
        """The columns for the replies of ``commands``, run in order."""
        names: list[str] = []
        values: list[list[Any]] = []
        statuses: list[list[str]] = []
        stamps: list[list[datetime | None]] = []
        for read, columns in zip(self.reads, split_replies(self.reads, replies), strict=True):
            times = [None if us is None else datetime.fromtimestamp(us / 1e6, UTC) for us in columns.event_us]
            for feature in self.wanted[read.view]:
                names.append(f"{read.view}__{feature}" if self.full_feature_names else feature)
                values.append(columns.values[feature])
                statuses.append(columns.statuses[feature])
                stamps.append(times)
        return OnlineResult(names, values, statuses, stamps, self.versions)


def prepare_read(
    repo: Repo,
    plans: Mapping[str, ViewPlan],
    project: str,
    features: Sequence[str],
    entity_rows: Mapping[str, Sequence[Any]],
    *,
    at_us: int,
    full_feature_names: bool = False,
) -> OnlineRead:
    """The read of ``features`` ("view:feature") for each entity row as of ``at_us``; ``plans``
    are the compiled views (compiled once, not per request). Bad input raises ExecutionError."""
    grouped = resolve_features(repo, features)
    count = entity_row_count(entity_rows)
    reads = []
    for view_name in grouped:
        plan = plans[view_name]
        entities = _entity_columns(plan, entity_rows, count)
        reads.append(
            feature_view_read(plan, entities, at_us)
            if plan.kind == "feature_view"
            else plain_view_read(plan, project, entities, at_us)
        )
    versions = {view: plans[view].version for view in grouped}
    return OnlineRead(reads, dict(grouped), versions, full_feature_names)


def read_online(client: redis.Redis, prepared: OnlineRead) -> OnlineResult:
    """Run a prepared read in one pipelined round trip on a blocking ``client``."""
    return prepared.result(run_commands(client, prepared.commands))
