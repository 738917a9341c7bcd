"""Every setting skewless reads from the environment, in one place.

Other modules never read ``os.environ`` themselves: they take a ``Settings``. The table below is
also what docs and the docker-compose check use, so it must list every variable skewless reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skewless._errors import ConfigError

__all__ = ["ENV_VARS", "Settings", "find_repo"]

#: Every environment variable skewless reads, with what it does.
ENV_VARS: dict[str, str] = {
    "SKEWLESS_REPO": "Feature repo directory (default: the current directory if it holds "
    "feature_store.yaml, else ./feature_repo).",
    "SKEWLESS_DATABASE_URL": "SQLAlchemy URL of the metadata database (default: SQLite at "
    "<repo>/.skewless/skewless.db; postgresql://... selects PostgreSQL via psycopg 3).",
    "SKEWLESS_AUTH": "API keys for `skewless serve`: 'on' (default) or 'off' (the demo).",
    "REDIS_URL": "Redis online store, e.g. redis://localhost:6379/0 (default: skewless starts a "
    "local redis-server with its data in <repo>/.skewless/redis).",
}


def find_repo(explicit: str | Path | None, env: Mapping[str, str]) -> Path:
    """The feature repo directory: ``explicit``, else $SKEWLESS_REPO, else ``.`` or ./feature_repo."""
    candidates = (
        [Path(explicit)]
        if explicit
        else ([Path(env["SKEWLESS_REPO"])] if env.get("SKEWLESS_REPO") else [Path("."), Path("feature_repo")])
    )
    for candidate in candidates:
        if (candidate / "feature_store.yaml").is_file():
            return candidate.resolve()
    shown = " or ".join(str(c.resolve()) for c in candidates)
    raise ConfigError(
        f"No feature repo at {shown}: feature_store.yaml not found. Pass --repo DIR, set "
        "SKEWLESS_REPO, or create one with `skewless init DIR`."
    )


def _normalize_database_url(url: str) -> str:
    """Let users write plain postgresql:// URLs; skewless talks to PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Resolved settings for one feature repo."""

    repo: Path
    database_url: str
    redis_url: str | None

    @classmethod
    def load(cls, repo: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        root = find_repo(repo, env)
        default_db = f"sqlite:///{root / '.skewless' / 'skewless.db'}"
        return cls(
            repo=root,
            database_url=_normalize_database_url(env.get("SKEWLESS_DATABASE_URL") or default_db),
            redis_url=env.get("REDIS_URL") or None,
        )

    @property
    def project(self) -> str:
        """The Feast project named in feature_store.yaml (part of every plain-view Redis key)."""
        import yaml

        config = yaml.safe_load((self.repo / "feature_store.yaml").read_text()) or {}
        if not isinstance(config, dict) or not config.get("project"):
            raise ConfigError(
                f"{self.repo / 'feature_store.yaml'} has no 'project:'; add one, e.g. project: my_features."
            )
        return str(config["project"])

    @property
    def state_dir(self) -> Path:
        """Where skewless keeps local state for this repo (SQLite, local Redis, registry)."""
        return self.repo / ".skewless"
