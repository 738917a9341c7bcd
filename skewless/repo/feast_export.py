"""Translate skewless definitions into Feast objects, so Feast shows the same catalog.

A repo file ends with ``expose_to_feast(globals())``: Feast's ``feast plan/apply/ui`` import the
file and find the Feast objects this adds, and ``skewless apply`` registers the same objects, so
both CLIs agree on the catalog. Aggregated views point Feast at their offline feature table
(``data/offline/<view>``, written by backfills); plain views at their source file.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from skewless._errors import DefinitionError
from skewless.transforms.dtypes import to_feast_type, to_feast_value_type
from skewless.transforms.entity import Entity
from skewless.transforms.services import FeatureService
from skewless.transforms.sources import EventSource
from skewless.transforms.views import FeatureView, PlainView, View

__all__ = ["EXPOSED_MARKER", "expose_to_feast", "offline_table_path", "to_feast"]

if TYPE_CHECKING:
    from feast import Entity as FeastEntity
    from feast import FeatureView as FeastFeatureView
    from feast import FileSource

EXPOSED_MARKER = "__skewless_exposed_to_feast__"
FeastObject = Any  # a Feast Entity, FeatureView or FileSource (Feast is imported only when used)


def offline_table_path(view_name: str) -> str:
    """Where an aggregated view's backfilled feature values live, relative to the repo root."""
    return f"data/offline/{view_name}"


def _feast_entity(entity: Entity) -> FeastEntity:
    from feast import Entity as FeastEntity

    return FeastEntity(
        name=entity.name,
        join_keys=[entity.join_key],
        value_type=to_feast_value_type(entity.dtype),
        description=entity.description,
    )


def _feast_source(view: View) -> FileSource:
    from feast import FileSource
    from feast.data_format import ParquetFormat

    if isinstance(view, FeatureView):
        return FileSource(
            name=f"{view.name}_offline",
            path=f"{offline_table_path(view.name)}/*/*.parquet",  # one file per daily partition
            file_format=ParquetFormat(),
            timestamp_field="event_time",
            description=f"Feature values of skewless view '{view.name}', written by backfill.",
        )
    source: EventSource = view.source
    if source.path is None:
        raise DefinitionError(
            f"view '{view.name}': Feast reads plain views from files; give source "
            f"'{source.name}' a parquet path= instead of table=."
        )
    return FileSource(
        name=source.name,
        path=source.path,
        timestamp_field=source.event_time,
        description=source.description,
    )


def _feast_view(view: View, entities: dict[str, FeastEntity], source: FileSource) -> FeastFeatureView:
    from feast import FeatureView as FeastFeatureView
    from feast import Field

    keys = [Field(name=e.join_key, dtype=to_feast_type(e.dtype)) for e in view.entities]
    features = [Field(name=name, dtype=to_feast_type(dt)) for name, dt in view.schema.items()]
    kind = "feature_view" if isinstance(view, FeatureView) else "plain_view"
    return FeastFeatureView(
        name=view.name,
        entities=[entities[e.name] for e in view.entities],
        ttl=view.ttl if isinstance(view.ttl, timedelta) else timedelta(0),
        schema=keys + features,
        source=source,
        online=True,
        description=view.description,
        owner=view.owner,
        tags={**view.tags, "skewless.kind": kind, "skewless.version": view.version},
    )


def to_feast(views: Iterable[View], services: Iterable[FeatureService] = ()) -> list[FeastObject]:
    """Feast entities, sources and feature views for ``views`` (entities and sources deduplicated),
    and Feast feature services for ``services``."""
    views = list(views)
    entities = {e.name: _feast_entity(e) for view in views for e in view.entities}
    objects: list[FeastObject] = list(entities.values())
    sources: dict[str, FileSource] = {}
    feast_views: dict[str, FeastFeatureView] = {}
    for view in views:
        source = _feast_source(view)
        feast_views[view.name] = _feast_view(view, entities, sources.setdefault(source.name, source))
    objects += feast_views.values()
    objects += [_feast_service(service, feast_views) for service in services]
    return objects + list(sources.values())


def _feast_service(service: FeatureService, feast_views: dict[str, FeastFeatureView]) -> FeastObject:
    from feast import FeatureService as FeastFeatureService
    from feast import FeatureView as FeastFeatureView

    def projected(view: View) -> FeastFeatureView:
        if view.name in feast_views:
            return feast_views[view.name]
        # Declared in another file, which exposes it to Feast itself: a copy to project from.
        return next(o for o in to_feast([view]) if isinstance(o, FeastFeatureView))

    return FeastFeatureService(
        name=service.name,
        features=[projected(p.view)[list(p.features)] for p in service.projections],
        description=service.description,
        owner=service.owner,
        tags={**service.tags, "skewless.version": service.version},
    )


def expose_to_feast(namespace: MutableMapping[str, Any]) -> None:
    """Add a Feast object for every skewless view and feature service in a module's ``globals()``.

    Call it as the last line of each repo file that declares views; Feast's CLI collects
    module-level Feast objects, and skewless checks that every such file calls this.
    """
    values = list(namespace.values())
    views = [v for v in values if isinstance(v, FeatureView | PlainView)]
    services = [s for s in values if isinstance(s, FeatureService)]
    for obj in to_feast(views, services):
        kind = type(obj).__name__.lower()
        namespace[f"_feast_{kind}_{obj.name}"] = obj
    namespace[EXPOSED_MARKER] = True
