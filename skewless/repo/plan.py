"""Plan and apply: compare the repo's definitions with the applied ones, then record the change.

The metadata database holds the applied version of every entity, source, view and feature service. A plan lists
what applying would add, change (and which fields) or remove; applying registers the repo with
Feast and records new definition versions, retiring the ones they replace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from skewless.metadata import Database
from skewless.metadata.models import DefinitionVersion, utcnow
from skewless.repo.feast_export import to_feast
from skewless.repo.loader import Repo

if TYPE_CHECKING:
    from feast import FeatureStore as FeastFeatureStore

__all__ = ["Change", "Plan", "apply_plan", "make_plan"]

_Key = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class Change:
    """One definition that applying would add, change or remove."""

    kind: str
    name: str
    action: str  # "add" | "change" | "remove"
    version: str | None
    previous_version: str | None
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What applying the repo would do; ``desired`` is every definition the repo declares."""

    changes: tuple[Change, ...]
    desired: dict[_Key, tuple[str, dict[str, Any]]]

    @property
    def is_empty(self) -> bool:
        """True when the repo matches what is applied."""
        return not self.changes


def _desired(repo: Repo) -> dict[_Key, tuple[str, dict[str, Any]]]:
    definitions = [
        *repo.entities.values(),
        *repo.sources.values(),
        *repo.views.values(),
        *repo.services.values(),
    ]
    return {(d.spec()["kind"], d.name): (d.version, d.spec()) for d in definitions}


def _applied(database: Database) -> dict[_Key, DefinitionVersion]:
    with database.session() as session:
        rows = session.scalars(select(DefinitionVersion).where(DefinitionVersion.retired_at.is_(None)))
        return {(row.kind, row.name): row for row in rows}


def _describe(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 and "\n" not in text else "…"


def diff_specs(old: Any, new: Any, path: str = "") -> list[str]:
    """Human-readable paths where two specs differ, e.g. ``aggregations[count_1h].window: 1h → 2h``.

    >>> diff_specs({"ttl": "1d", "transform": {"source": "a"}}, {"ttl": "2d", "transform": {"source": "b"}})
    ['transform body changed', 'ttl: 1d → 2d']
    >>> diff_specs({"features": ["v:a", "v:b"]}, {"features": ["v:a", "v:c"]})
    ['features: added v:c', 'features: removed v:b']
    """
    if old == new:
        return []
    if path == "transform.source":
        return ["transform body changed"]
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(old.keys() | new.keys(), key=lambda k: (k not in old, k)):
            out += diff_specs(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return out
    if (
        isinstance(old, list)
        and isinstance(new, list)
        and all(isinstance(x, dict) and "name" in x for x in old + new)
    ):
        before = {x["name"]: x for x in old}
        after = {x["name"]: x for x in new}
        out = [f"{path}: added {name}" for name in after if name not in before]
        out += [f"{path}: removed {name}" for name in before if name not in after]
        for name in before.keys() & after.keys():
            out += diff_specs(before[name], after[name], f"{path}[{name}]")
        return sorted(out) if out else [f"{path}: order changed"]
    if isinstance(old, list) and isinstance(new, list) and all(isinstance(x, str) for x in old + new):
        out = [f"{path}: added {x}" for x in new if x not in old]
        out += [f"{path}: removed {x}" for x in old if x not in new]
        return out or [f"{path}: order changed"]
    return [f"{path}: {_describe(old)} → {_describe(new)}"]


def make_plan(repo: Repo, database: Database) -> Plan:
    """Compare the repo with the applied definitions."""
    desired = _desired(repo)
    applied = _applied(database)
    changes = []
    for key, (version, spec) in sorted(desired.items()):
        row = applied.get(key)
        if row is None:
            changes.append(Change(key[0], key[1], "add", version, None))
        elif row.version != version:
            details = tuple(diff_specs(row.spec, spec)) or ("declaration changed",)
            changes.append(Change(key[0], key[1], "change", version, row.version, details))
    for key, row in sorted(applied.items()):
        if key not in desired:
            changes.append(Change(key[0], key[1], "remove", None, row.version))
    return Plan(changes=tuple(changes), desired=desired)


def _sync_feast(repo: Repo, feast: FeastFeatureStore) -> None:
    """Register every view with Feast and delete Feast objects the repo no longer declares."""
    objects = to_feast(repo.views.values(), repo.services.values())
    names = {(type(o).__name__, o.name) for o in objects}
    registered: list[Any] = [
        *feast.list_feature_views(),
        *feast.list_entities(),
        *feast.list_data_sources(),
        *feast.list_feature_services(),
    ]
    stale = [o for o in registered if (type(o).__name__, o.name) not in names and o.name != "__dummy"]
    feast.apply(objects, objects_to_delete=stale, partial=False)


def apply_plan(plan: Plan, repo: Repo, database: Database, feast: FeastFeatureStore) -> None:
    """Register the repo with Feast, then record the plan's versions in the metadata database."""
    _sync_feast(repo, feast)
    now = utcnow()
    with database.session() as session:
        for change in plan.changes:
            if change.previous_version is not None:
                current = session.scalars(
                    select(DefinitionVersion).where(
                        DefinitionVersion.kind == change.kind,
                        DefinitionVersion.name == change.name,
                        DefinitionVersion.retired_at.is_(None),
                    )
                )
                for row in current:
                    row.retired_at = now
            if change.version is not None:
                version, spec = plan.desired[(change.kind, change.name)]
                session.add(
                    DefinitionVersion(
                        kind=change.kind, name=change.name, version=version, spec=spec, applied_at=now
                    )
                )
