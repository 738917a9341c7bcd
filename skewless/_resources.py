"""Find directories that live at the top of the source tree and ship inside the wheel.

``alembic/`` and ``feature_repo/`` sit at the repository root (where users and Alembic expect
them); wheels carry copies under ``skewless/_bundled/``. This is the one place that knows both.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["resource_dir"]

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The directory ``name`` (``"alembic"`` or ``"feature_repo"``), bundled or from the checkout."""
    for candidate in (_PACKAGE / "_bundled" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"skewless is installed without its {name}/ directory; reinstall it.")
