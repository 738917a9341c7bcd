"""Load a feature repo: import its Python files and collect the skewless definitions in them.

Files are imported the way Feast imports them (repo root on ``sys.path``, module names relative to
it), so both tools see the same objects. Any error raised while a file runs is reported as a
``DefinitionError`` that starts with ``file:line``.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from skewless._errors import DefinitionError
from skewless.repo.feast_export import EXPOSED_MARKER
from skewless.transforms import Entity, EventSource, FeatureView, PlainView, View

__all__ = ["Repo", "load_repo"]

_SKIPPED_DIRS = {"data", "__pycache__", ".skewless", ".venv", "tests"}


@dataclass(frozen=True)
class Repo:
    """Everything a feature repo declares, by name."""

    root: Path
    entities: dict[str, Entity]
    sources: dict[str, EventSource]
    views: dict[str, View]

    def view(self, name: str) -> View:
        """The view called ``name``, or an error that lists the known ones."""
        if name not in self.views:
            raise DefinitionError(
                f"Unknown view '{name}'; this repo declares: {', '.join(sorted(self.views)) or 'none'}."
            )
        return self.views[name]


def _repo_files(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*.py")
        if not any(
            part in _SKIPPED_DIRS or part.startswith(".") for part in path.relative_to(root).parts[:-1]
        )
    )


def _forget_modules_under(root: Path) -> None:
    """Drop cached modules of this repo, so a re-load sees edited files."""
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(root):
            del sys.modules[name]


def _import(root: Path, path: Path) -> ModuleType:
    module_name = ".".join(path.relative_to(root).with_suffix("").parts)
    try:
        return importlib.import_module(module_name)
    except DefinitionError as exc:
        raise DefinitionError(f"{_where(exc, root, path)}: {exc}") from exc
    except Exception as exc:  # the user's code failed to run: say where and what
        raise DefinitionError(
            f"{_where(exc, root, path)}: {type(exc).__name__}: {exc}; fix the file and re-run."
        ) from exc


def _where(exc: BaseException, root: Path, path: Path) -> str:
    """``file:line`` of the deepest frame inside the repo, for messages users can jump to."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{Path(exc.filename).relative_to(root.parent)}:{exc.lineno}"
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve().is_relative_to(root)
    ]
    frame = frames[-1] if frames else None
    shown = Path(frame.filename) if frame else path
    return f"{shown.resolve().relative_to(root.parent)}:{frame.lineno if frame else 1}"


def _collect(kind: type, found: dict[str, object], obj: object, where: str, places: dict[int, str]) -> None:
    name = obj.name  # type: ignore[attr-defined]
    existing = found.get(name)
    if existing is obj:
        return
    if existing is not None:
        raise DefinitionError(
            f"{where}: two {kind.__name__} objects are named '{name}' (the other is in "
            f"{places[id(existing)]}); rename one."
        )
    found[name] = obj
    places[id(obj)] = where


def load_repo(root: Path) -> Repo:
    """Import every Python file under ``root`` and collect its entities, sources and views."""
    root = root.resolve()
    _forget_modules_under(root)
    entities: dict[str, object] = {}
    sources: dict[str, object] = {}
    views: dict[str, object] = {}
    places: dict[int, str] = {}
    sys.path.insert(0, str(root))
    try:
        for path in _repo_files(root):
            module = _import(root, path)
            where = str(path.relative_to(root.parent))
            declared_views = False
            for obj in vars(module).values():
                if isinstance(obj, Entity):
                    _collect(Entity, entities, obj, where, places)
                elif isinstance(obj, EventSource):
                    _collect(EventSource, sources, obj, where, places)
                elif isinstance(obj, FeatureView | PlainView):
                    _collect(type(obj), views, obj, where, places)
                    declared_views = True
            if declared_views and not getattr(module, EXPOSED_MARKER, False):
                raise DefinitionError(
                    f"{where}: declares views but does not expose them to Feast; add "
                    "`expose_to_feast(globals())` as its last line."
                )
    finally:
        sys.path.remove(str(root))
    for view in views.values():
        for entity in view.entities:  # type: ignore[attr-defined]
            entities.setdefault(entity.name, entity)
        sources.setdefault(view.source.name, view.source)  # type: ignore[attr-defined]
    return Repo(root=root, entities=entities, sources=sources, views=views)  # type: ignore[arg-type]
