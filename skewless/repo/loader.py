"""Load a feature repo: import its Python files and collect the skewless definitions in them.

Files get the module names Feast gives them (dotted paths relative to the repo root), and are
compiled from source on every load so that an edit is never hidden by cached bytecode. Any error raised while a file runs is reported as a
``DefinitionError`` that starts with ``file:line``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import linecache
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, ModuleType

from skewless._errors import DefinitionError
from skewless.repo.feast_export import EXPOSED_MARKER
from skewless.repo.files import definition_files
from skewless.transforms import Entity, EventSource, FeatureService, FeatureView, PlainView, View

__all__ = ["Repo", "load_repo"]


@dataclass(frozen=True)
class Repo:
    """Everything a feature repo declares, by name."""

    root: Path
    entities: dict[str, Entity]
    sources: dict[str, EventSource]
    views: dict[str, View]
    services: dict[str, FeatureService] = field(default_factory=dict)

    def service(self, name: str) -> FeatureService:
        """The feature service called ``name``, or an error that lists the known ones."""
        if name not in self.services:
            raise DefinitionError(
                f"Unknown feature service '{name}'; this repo declares: {', '.join(sorted(self.services)) or 'none'}."
            )
        return self.services[name]

    def view(self, name: str) -> View:
        """The view called ``name``, or an error that lists the known ones."""
        if name not in self.views:
            raise DefinitionError(
                f"Unknown view '{name}'; this repo declares: {', '.join(sorted(self.views)) or 'none'}."
            )
        return self.views[name]


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compile from source every time: cached bytecode can miss an edit made within a second."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


class _RepoFinder(importlib.abc.MetaPathFinder):
    """Finds the repo's own modules (and packages) and loads them fresh from source."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        base = self.root.joinpath(*fullname.split("."))
        for candidate, is_package in ((base.with_suffix(".py"), False), (base / "__init__.py", True)):
            if candidate.is_file():
                loader = _FreshSourceLoader(fullname, str(candidate))
                locations = [str(base)] if is_package else None
                return importlib.util.spec_from_file_location(
                    fullname, candidate, loader=loader, submodule_search_locations=locations
                )
        return None


def _module_name(root: Path, path: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts)


def _forget_modules(root: Path, files: list[Path]) -> None:
    """Drop cached modules with this repo's module names (from this or another repo) and their
    source lines, so a re-load runs the files as they are now."""
    for path in files:
        module = sys.modules.pop(_module_name(root, path), None)
        linecache.cache.pop(str(path), None)
        file = getattr(module, "__file__", None)
        if file:
            linecache.cache.pop(file, None)


def _import(root: Path, path: Path) -> ModuleType:
    try:
        return importlib.import_module(_module_name(root, path))
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
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if os.path.isabs(f.filename) and Path(f.filename).resolve().is_relative_to(root)
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
    files = definition_files(root)
    _forget_modules(root, files)
    entities: dict[str, object] = {}
    sources: dict[str, object] = {}
    views: dict[str, object] = {}
    services: dict[str, object] = {}
    places: dict[int, str] = {}
    finder = _RepoFinder(root)
    sys.meta_path.insert(0, finder)
    try:
        for path in files:
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
                elif isinstance(obj, FeatureService):
                    _collect(FeatureService, services, obj, where, places)
            if declared_views and not getattr(module, EXPOSED_MARKER, False):
                raise DefinitionError(
                    f"{where}: declares views but does not expose them to Feast; add "
                    "`expose_to_feast(globals())` as its last line."
                )
    finally:
        sys.meta_path.remove(finder)
    for view in views.values():
        for entity in view.entities:  # type: ignore[attr-defined]
            entities.setdefault(entity.name, entity)
        sources.setdefault(view.source.name, view.source)  # type: ignore[attr-defined]
    for service in services.values():
        for projection in service.projections:  # type: ignore[attr-defined]
            if views.get(projection.view.name) is not projection.view:
                raise DefinitionError(
                    f"{places[id(service)]}: feature service '{service.name}' uses view "  # type: ignore[attr-defined]
                    f"'{projection.view.name}', which no repo file declares at module level."
                )
    return Repo(root=root, entities=entities, sources=sources, views=views, services=services)  # type: ignore[arg-type]
