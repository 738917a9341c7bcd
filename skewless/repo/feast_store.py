"""A Feast ``FeatureStore`` for a skewless repo, pointed at the same Redis skewless uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skewless._errors import ConfigError
from skewless.settings import Settings
from skewless.stores.redis_connection import feast_connection_string

if TYPE_CHECKING:
    from feast import FeatureStore as FeastFeatureStore

__all__ = ["feast_store"]


def feast_store(settings: Settings, redis_url: str) -> FeastFeatureStore:
    """Feast's store for ``settings.repo`` with its online store at ``redis_url``."""
    from feast import FeatureStore as FeastFeatureStore  # slow to import: only when used
    from feast.errors import FeastError
    from feast.repo_config import load_repo_config
    from pydantic import ValidationError

    yaml_path = settings.repo / "feature_store.yaml"
    try:
        config = load_repo_config(settings.repo, yaml_path)
    except (FeastError, ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{yaml_path} is not a valid Feast config: {first}") from exc
    if getattr(config.online_store, "type", None) != "redis":
        raise ConfigError(f"{yaml_path}: skewless needs online_store type 'redis'; set it there.")
    config.online_store.connection_string = feast_connection_string(redis_url)
    return FeastFeatureStore(config=config, repo_path=str(settings.repo))
