"""Feature references: ``"view:feature"`` strings, resolved against a loaded repo."""

from __future__ import annotations

from collections.abc import Sequence

from skewless._errors import DefinitionError
from skewless.repo.loader import Repo

__all__ = ["resolve_features"]


def resolve_features(repo: Repo, refs: Sequence[str]) -> dict[str, list[str]]:
    """Group ``"view:feature"`` references by view, in request order; ``"view:*"`` means all.

    Raises a ``DefinitionError`` naming the bad reference and what exists instead.
    """
    if isinstance(refs, str) or not refs:
        raise DefinitionError("features must be a non-empty list of 'view:feature' references.")
    grouped: dict[str, list[str]] = {}
    for ref in refs:
        view_name, sep, feature = str(ref).partition(":")
        if not sep or not view_name or not feature:
            raise DefinitionError(
                f"feature reference {ref!r} is not 'view:feature', e.g. 'card_activity:count_1h'."
            )
        view = repo.view(view_name)
        names = list(view.schema) if feature == "*" else [feature]
        for name in names:
            if name not in view.schema:
                raise DefinitionError(
                    f"view '{view_name}' has no feature '{name}'; its features are {', '.join(view.schema)}."
                )
            chosen = grouped.setdefault(view_name, [])
            if name in chosen:
                raise DefinitionError(f"feature '{view_name}:{name}' is requested twice.")
            chosen.append(name)
    return grouped
