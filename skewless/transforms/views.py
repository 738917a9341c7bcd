"""Views: named groups of features about entities, computed from one event source.

``FeatureView`` runs an optional row-level transform, then windowed aggregations.
``PlainView`` serves the latest value of source columns (e.g. a card's profile).
Both check everything they can at definition time and say which view is wrong and how.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

from skewless._errors import DefinitionError, TransformError
from skewless.transforms._checks import check_name
from skewless.transforms.aggregation import Aggregation
from skewless.transforms.dtypes import dtype_name
from skewless.transforms.durations import format_duration, parse_duration
from skewless.transforms.entity import Entity
from skewless.transforms.row_transform import (
    RowTransform,
    apply_transform,
    transform_outputs,
    transform_source,
)
from skewless.transforms.sources import EventSource
from skewless.transforms.versioning import content_version

__all__ = ["FeatureView", "PlainView", "View", "ViewProjection"]


@dataclass(frozen=True, kw_only=True)
class _ViewBase:
    name: str
    entities: Sequence[Entity]
    source: EventSource
    ttl: timedelta | str | None = None
    owner: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Share of served requests whose values of this view go to the serving log (1.0: all).
    #: Operational, not part of the definition: changing it keeps the view's version.
    log_sample_rate: float = 1.0

    def _check_common(self) -> None:
        what = f"view '{self.name}'"
        check_name(self.name, what="view")
        rate = self.log_sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise DefinitionError(
                f"{what}: log_sample_rate must be a number from 0 (log nothing) to 1 (log every "
                f"served vector); got {rate!r}."
            )
        entities = tuple(self.entities)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise DefinitionError(f"{what}: entities= must list at least one Entity.")
        if not isinstance(self.source, EventSource):
            raise DefinitionError(f"{what}: source= must be an EventSource.")
        for entity in entities:
            declared = self.source.columns.get(entity.join_key)
            if declared is None:
                raise DefinitionError(
                    f"{what}: entity '{entity.name}' join key '{entity.join_key}' is not a column "
                    f"of source '{self.source.name}'; add it to the source schema."
                )
            if declared != entity.dtype:
                raise DefinitionError(
                    f"{what}: join key '{entity.join_key}' is {declared} in source "
                    f"'{self.source.name}' but {entity.dtype} in entity '{entity.name}'."
                )
        object.__setattr__(self, "entities", entities)
        if self.ttl is not None:
            object.__setattr__(self, "ttl", parse_duration(self.ttl, what=f"{what}: ttl"))
        object.__setattr__(self, "tags", {str(k): str(v) for k, v in dict(self.tags).items()})

    def __getitem__(self, features: Sequence[str]) -> ViewProjection:
        """Some of this view's features, for a FeatureService (Feast's ``view[["a", "b"]]``)."""
        chosen = (features,) if isinstance(features, str) else tuple(features)
        unknown = [f for f in chosen if f not in self.schema]
        if unknown or not chosen:
            raise DefinitionError(
                f"view '{self.name}' has no feature {', '.join(map(repr, unknown)) or '(none chosen)'}; "
                f"its features are {', '.join(self.schema)}."
            )
        return ViewProjection(self, chosen)  # type: ignore[arg-type]

    @property
    def join_keys(self) -> list[str]:
        """Join key of each entity, in declaration order."""
        return [entity.join_key for entity in self.entities]

    def _common_spec(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "name": self.name,
            "entities": [entity.spec() for entity in self.entities],
            "source": self.source.spec(),
            "ttl": format_duration(self.ttl) if isinstance(self.ttl, timedelta) else None,
            "owner": self.owner,
            "description": self.description,
            "tags": dict(sorted(self.tags.items())),
        }

    def spec(self) -> dict[str, Any]:
        """The declaration as plain data: what the definition version hashes."""
        raise NotImplementedError

    @functools.cached_property
    def schema(self) -> dict[str, pl.DataType]:
        """Feature name to polars type, in declaration order."""
        raise NotImplementedError

    @property
    def version(self) -> str:
        """Content hash of the declaration and transform source: the definition version."""
        return content_version(self.spec())


@dataclass(frozen=True, kw_only=True)
class FeatureView(_ViewBase):
    """Windowed aggregations over a source's events, after an optional row-level transform.

    Examples
    --------
    >>> card = Entity(name="card", join_key="card_id")
    >>> txns = EventSource(name="txns", path="t.parquet", event_time="ts", schema={
    ...     "card_id": pl.String, "amount": pl.Float64, "ts": pl.Datetime("us", "UTC")})
    >>> view = FeatureView(name="card_spend", entities=[card], source=txns,
    ...                    aggregations=[Aggregation("sum", "amount", window="1h")])
    >>> view.schema
    {'amount_sum_1h': Float64}
    """

    aggregations: Sequence[Aggregation]
    transform: RowTransform | None = None

    def __post_init__(self) -> None:
        self._check_common()
        what = f"view '{self.name}'"
        aggregations = tuple(self.aggregations)
        if not aggregations or not all(isinstance(a, Aggregation) for a in aggregations):
            raise DefinitionError(f"{what}: aggregations= must list at least one Aggregation.")
        object.__setattr__(self, "aggregations", aggregations)
        columns = self.input_columns
        names: set[str] = set()
        for aggregation in aggregations:
            if aggregation.name in names:
                raise DefinitionError(
                    f"{what}: feature name '{aggregation.name}' is declared twice; "
                    "give one of them another name=."
                )
            names.add(str(aggregation.name))
            if aggregation.column is not None and aggregation.column not in columns:
                raise DefinitionError(
                    f"{what}: aggregation '{aggregation.name}' reads unknown column "
                    f"'{aggregation.column}'; known columns: {', '.join(columns)}."
                )
        self._check_transform_schema()
        _ = self.schema  # resolves every output type: rejects e.g. a sum over a string column

    @property
    def input_columns(self) -> dict[str, pl.DataType]:
        """Columns the aggregations may read: the source's plus the transform's outputs."""
        columns = self.source.columns
        if self.transform is not None:
            columns.update(transform_outputs(self.transform))
        return columns

    def _check_transform_schema(self) -> None:
        """Run the transform on an empty frame: cheap, and catches a wrong output schema early."""
        if self.transform is None:
            return
        check_transform_output(self, self.source.empty_frame())

    @functools.cached_property
    def schema(self) -> dict[str, pl.DataType]:
        columns = self.input_columns
        return {
            str(a.name): a.output_dtype(columns.get(a.column) if a.column else None, view=self.name)
            for a in self.aggregations
        }

    def spec(self) -> dict[str, Any]:
        spec = self._common_spec("feature_view")
        spec["aggregations"] = [a.spec() for a in self.aggregations]
        if self.transform is not None:
            spec["transform"] = {
                "name": self.transform.__name__,
                "outputs": {c: dtype_name(t) for c, t in transform_outputs(self.transform).items()},
                "source": transform_source(self.transform),
            }
        return spec


def check_transform_output(view: FeatureView, events: pl.DataFrame) -> pl.DataFrame:
    """Apply the view's transform to ``events`` and check rows and declared columns survive."""
    assert view.transform is not None
    what = f"view '{view.name}': transform '{view.transform.__name__}'"
    try:
        return apply_transform(view.transform, events, what=what)
    except TransformError as exc:  # found while checking the definition
        raise DefinitionError(str(exc)) from exc


@dataclass(frozen=True, kw_only=True)
class PlainView(_ViewBase):
    """The latest value (by event time) of some source columns, per entity.

    Examples
    --------
    >>> card = Entity(name="card", join_key="card_id")
    >>> profiles = EventSource(name="profiles", path="p.parquet", event_time="updated_at",
    ...     schema={"card_id": pl.String, "credit_limit": pl.Float64,
    ...             "updated_at": pl.Datetime("us", "UTC")})
    >>> PlainView(name="card_profile", entities=[card], source=profiles,
    ...           features=["credit_limit"]).schema
    {'credit_limit': Float64}
    """

    features: Sequence[str]

    def __post_init__(self) -> None:
        self._check_common()
        what = f"view '{self.name}'"
        features = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        if not features:
            raise DefinitionError(f"{what}: features= must list at least one source column.")
        if len(set(features)) != len(features):
            raise DefinitionError(f"{what}: features= lists a column twice.")
        object.__setattr__(self, "features", features)
        for column in features:
            if column not in self.source.columns:
                raise DefinitionError(
                    f"{what}: feature '{column}' is not a column of source '{self.source.name}'; "
                    f"known columns: {', '.join(self.source.columns)}."
                )
            if column in self.join_keys or column == self.source.event_time:
                raise DefinitionError(f"{what}: '{column}' is a join key or the event time, not a feature.")

    @functools.cached_property
    def schema(self) -> dict[str, pl.DataType]:
        return {column: self.source.columns[column] for column in self.features}

    def spec(self) -> dict[str, Any]:
        spec = self._common_spec("plain_view")
        spec["features"] = list(self.features)
        return spec


View = FeatureView | PlainView


@dataclass(frozen=True)
class ViewProjection:
    """Some features of one view, as a FeatureService lists them (``view[["a", "b"]]``)."""

    view: View
    features: tuple[str, ...]
