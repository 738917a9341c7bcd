"""skewless: one feature definition, computed identically offline (DuckDB) and online (Redis),
with monitors for training/serving skew.

Everything a feature repo or an application needs is importable from here; anything else may
change without notice.
"""

from skewless._errors import (
    ConfigError,
    DefinitionError,
    ExecutionError,
    MetadataError,
    MonitorError,
    SkewlessError,
    StoreError,
    TransformError,
)
from skewless._version import __version__
from skewless.repo.feast_export import expose_to_feast
from skewless.transforms import (
    Aggregation,
    Entity,
    EventSource,
    FeatureService,
    FeatureView,
    PlainView,
    row_transform,
)

__all__ = [
    "Aggregation",
    "ConfigError",
    "DefinitionError",
    "Entity",
    "EventSource",
    "ExecutionError",
    "FeatureService",
    "FeatureView",
    "MetadataError",
    "MonitorError",
    "PlainView",
    "SkewlessError",
    "StoreError",
    "TransformError",
    "__version__",
    "expose_to_feast",
    "row_transform",
]
