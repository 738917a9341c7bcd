"""Every error skewless raises on purpose, in one tree.

Catch at the level you care about::

    SkewlessError                 anything skewless raised on purpose
    ├── ConfigError               settings, environment, repo layout
    ├── DefinitionError           a feature repo declaration is wrong (found at definition or plan time)
    ├── ExecutionError            an executor could not compute a plan
    │   └── TransformError        a view's row-level transform failed on the events given
    ├── StoreError                Redis, DuckDB or a file store failed or is unreachable
    ├── MetadataError             the metadata database failed or is at the wrong revision
    └── MonitorError              a skew monitor could not run

Messages are one line that names the object, the problem and the fix, because the CLI and the API
show them to users verbatim.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DefinitionError",
    "ExecutionError",
    "MetadataError",
    "MonitorError",
    "SkewlessError",
    "StoreError",
    "TransformError",
]


class SkewlessError(Exception):
    """Base of every error skewless raises on purpose; its message is meant for the user."""


class ConfigError(SkewlessError):
    """A setting, an environment variable or the repo layout is wrong."""


class DefinitionError(SkewlessError):
    """A declaration in the feature repo is wrong; the message names the object and the fix."""


class ExecutionError(SkewlessError):
    """An executor could not compute a plan over the data it was given."""


class TransformError(ExecutionError):
    """A view's row-level transform raised, or broke its contract (rows, declared outputs), on
    the events it was given: the repo's code, not skewless, needs the fix."""


class StoreError(SkewlessError):
    """A store (Redis, DuckDB, files) failed or could not be reached."""


class MetadataError(SkewlessError):
    """The metadata database failed or is not at the expected revision."""


class MonitorError(SkewlessError):
    """A skew monitor could not run."""
