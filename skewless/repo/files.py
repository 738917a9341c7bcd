"""Which files of a feature repo hold its definitions."""

from __future__ import annotations

from pathlib import Path

__all__ = ["definition_files"]

_SKIPPED_DIRS = {"data", "__pycache__", ".skewless", ".venv", "tests"}


def definition_files(root: Path) -> list[Path]:
    """The repo's Python files, in a stable order: what loading the repo imports, and what a
    view's computed history depends on besides its data (a constant its transform reads)."""
    return sorted(
        path
        for path in root.rglob("*.py")
        if not any(
            part in _SKIPPED_DIRS or part.startswith(".") for part in path.relative_to(root).parts[:-1]
        )
    )
