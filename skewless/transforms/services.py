"""Feature services: the named set of features one model reads.

A backend asks for ``feature_service: "fraud_model"`` instead of repeating the model's feature
list, so the list lives in the repo next to the views, under review, with a version. The shape is
Feast's: a view stands for all its features, ``view[["a", "b"]]`` for some of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skewless._errors import DefinitionError
from skewless.transforms._checks import check_name
from skewless.transforms.versioning import content_version
from skewless.transforms.views import FeatureView, PlainView, View, ViewProjection

__all__ = ["FeatureService"]


@dataclass(frozen=True, kw_only=True)
class FeatureService:
    """Features of one or more views, served and trained on under one name.

    Examples
    --------
    >>> import polars as pl
    >>> from skewless import Entity, EventSource, PlainView
    >>> card = Entity(name="card", join_key="card_id")
    >>> profiles = EventSource(name="profiles", path="p.parquet", event_time="updated_at",
    ...     schema={"card_id": pl.String, "limit": pl.Float64, "country": pl.String,
    ...             "updated_at": pl.Datetime("us", "UTC")})
    >>> profile = PlainView(name="profile", entities=[card], source=profiles, features=["limit", "country"])
    >>> FeatureService(name="risk_model", features=[profile[["country"]]]).refs
    ['profile:country']
    """

    name: str
    features: Sequence[View | ViewProjection]
    owner: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        what = f"feature service '{self.name}'"
        check_name(self.name, what="feature service")
        items = (
            (self.features,) if isinstance(self.features, FeatureView | PlainView) else tuple(self.features)
        )
        projections = tuple(
            item if isinstance(item, ViewProjection) else _whole(item, what) for item in items
        )
        if not projections:
            raise DefinitionError(f"{what}: features= must list views or view[['feature', ...]] selections.")
        object.__setattr__(self, "features", projections)
        refs = self.refs
        twice = sorted({ref for ref in refs if refs.count(ref) > 1})
        if twice:
            raise DefinitionError(f"{what}: {', '.join(twice)} is listed twice; list each feature once.")
        object.__setattr__(self, "tags", {str(k): str(v) for k, v in dict(self.tags).items()})

    @property
    def projections(self) -> tuple[ViewProjection, ...]:
        return self.features  # type: ignore[return-value]  # normalized in __post_init__

    @property
    def refs(self) -> list[str]:
        """The features as ``view:feature`` references, in declaration order."""
        return [f"{p.view.name}:{f}" for p in self.projections for f in p.features]

    def spec(self) -> dict[str, Any]:
        """The declaration as plain data: what the definition version hashes."""
        return {
            "kind": "feature_service",
            "name": self.name,
            "features": self.refs,
            "owner": self.owner,
            "description": self.description,
            "tags": dict(sorted(self.tags.items())),
        }

    @property
    def version(self) -> str:
        """Content hash of the declaration."""
        return content_version(self.spec())


def _whole(item: object, what: str) -> ViewProjection:
    if not isinstance(item, FeatureView | PlainView):
        raise DefinitionError(
            f"{what}: {item!r} is not a view; list views, or view[['feature', ...]] for some of their features."
        )
    return ViewProjection(item, tuple(item.schema))
