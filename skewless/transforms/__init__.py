"""Definitions (entities, sources, views, aggregations, transforms) and, later, both executors."""

from skewless.transforms.aggregation import FUNCTIONS, Aggregation
from skewless.transforms.durations import format_duration, parse_duration
from skewless.transforms.entity import Entity
from skewless.transforms.row_transform import row_transform
from skewless.transforms.services import FeatureService
from skewless.transforms.sources import EventSource
from skewless.transforms.views import FeatureView, PlainView, View

__all__ = [
    "FUNCTIONS",
    "Aggregation",
    "Entity",
    "EventSource",
    "FeatureService",
    "FeatureView",
    "PlainView",
    "View",
    "format_duration",
    "parse_duration",
    "row_transform",
]
