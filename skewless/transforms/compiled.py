"""The compiled plan of a view: what both executors run, resolved once.

Compiling turns a definition into plain numbers and names — windows in microseconds, output
types, the aggregator class of each feature — so neither executor re-derives anything per event
or per request, and neither has feature-specific code.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import polars as pl

from skewless.transforms.aggregations import AGGREGATORS, Aggregator
from skewless.transforms.row_transform import RowTransform, apply_transform
from skewless.transforms.sources import EventSource
from skewless.transforms.views import FeatureView, View

__all__ = ["CompiledAggregation", "ViewPlan", "compile_view", "restricted", "to_us"]


def to_us(delta: timedelta) -> int:
    """A duration in whole microseconds."""
    return delta // timedelta(microseconds=1)


@dataclass(frozen=True)
class CompiledAggregation:
    """One feature of a FeatureView, ready to run."""

    name: str
    aggregator: type[Aggregator]
    column: str | None
    window_us: int
    granularity_us: int
    dtype: pl.DataType
    input_dtype: pl.DataType | None

    @property
    def reach_us(self) -> int:
        """How far back from a row's time its window may read events: the window plus its
        tile, since a window starts at a tile boundary (docs/semantics.md §4)."""
        return self.window_us + self.granularity_us


@dataclass(frozen=True)
class ViewPlan:
    """Everything an executor needs to compute one view."""

    name: str
    version: str
    kind: str  # "feature_view" | "plain_view"
    source: EventSource
    join_keys: tuple[str, ...]
    key_dtypes: tuple[pl.DataType, ...]
    ttl_us: int | None
    lateness_us: int
    transform: RowTransform | None
    aggregations: tuple[CompiledAggregation, ...]
    features: dict[str, pl.DataType]
    #: Granularity → longest window among the aggregations with that tile size: which tiles a
    #: read needs, and how long a tile stays readable (both executors, resolved once).
    spans: dict[int, int]
    #: Share of served requests logged for this view (the view's ``log_sample_rate``).
    log_sample_rate: float = 1.0

    @property
    def max_window_us(self) -> int:
        """Longest window plus its tile: how far back any feature can look."""
        return max((a.reach_us for a in self.aggregations), default=0)

    def transformed(self, events: pl.DataFrame) -> pl.DataFrame:
        """Counted events as the aggregations read them, in both executors: the row-level
        transform applied (a ``TransformError`` if it fails or breaks its contract), then every
        float input that is NaN or infinite made null (semantics §5: Redis cannot add such
        values, and one would spoil a window's sum until it passed)."""
        if self.transform is not None:
            what = f"transform '{self.transform.__name__}' of view '{self.name}'"
            events = apply_transform(self.transform, events, what=what)
        floats = {
            a.column for a in self.aggregations if a.column and a.input_dtype and a.input_dtype.is_float()
        }
        if not floats:
            return events
        return events.with_columns(
            pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in sorted(floats)
        )


def compile_view(view: View) -> ViewPlan:
    """Resolve a view's declaration into a plan."""
    features = view.schema
    aggregations: tuple[CompiledAggregation, ...] = ()
    if isinstance(view, FeatureView):
        columns = view.input_columns
        aggregations = tuple(
            CompiledAggregation(
                name=str(a.name),
                aggregator=AGGREGATORS[a.function],
                column=a.column,
                window_us=to_us(a.window),  # type: ignore[arg-type]
                granularity_us=to_us(a.granularity),  # type: ignore[arg-type]
                dtype=features[str(a.name)],
                input_dtype=columns[a.column] if a.column else None,
            )
            for a in view.aggregations
        )
    return ViewPlan(
        name=view.name,
        version=view.version,
        kind=view.spec()["kind"],
        source=view.source,
        join_keys=tuple(view.join_keys),
        key_dtypes=tuple(e.dtype for e in view.entities),
        ttl_us=to_us(view.ttl) if isinstance(view.ttl, timedelta) else None,
        lateness_us=to_us(view.source.allowed_lateness),  # type: ignore[arg-type]
        transform=view.transform if isinstance(view, FeatureView) else None,
        aggregations=aggregations,
        features=features,
        spans=_spans(aggregations),
        log_sample_rate=float(view.log_sample_rate),
    )


def restricted(plan: ViewPlan, names: Collection[str]) -> ViewPlan:
    """``plan`` computing only the aggregations ``names``, for a training set that asks for
    some of a windowed view's features: each aggregation's value does not depend on the
    others, and the rest would cost as much again (their windows set how much history the
    query joins). A plain view is returned whole: its columns come from one lookup."""
    if not plan.aggregations:
        return plan
    kept = tuple(a for a in plan.aggregations if a.name in names)
    features = {a.name: plan.features[a.name] for a in kept}
    return replace(plan, aggregations=kept, features=features, spans=_spans(kept))


def _spans(aggregations: Sequence[CompiledAggregation]) -> dict[int, int]:
    """Granularity → the longest window of the aggregations with it (``ViewPlan.spans``)."""
    return {
        g: max(a.window_us for a in aggregations if a.granularity_us == g)
        for g in sorted({a.granularity_us for a in aggregations})
    }
