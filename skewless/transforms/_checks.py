"""Small checks shared by every definition class, so their messages read the same."""

from __future__ import annotations

import re

from skewless._errors import DefinitionError

__all__ = ["check_name"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Names are stored in the metadata DB, as are "view:feature" references (400 characters).
_MAX_NAME = 100


def check_name(name: object, *, what: str) -> str:
    """Return ``name`` if it is a lowercase identifier (it becomes a column, key and Feast name).

    >>> check_name("card_activity", what="view")
    'card_activity'
    >>> check_name("Card Activity", what="view")
    Traceback (most recent call last):
    ...
    skewless._errors.DefinitionError: view name 'Card Activity' is not valid; use lowercase letters, digits and '_', starting with a letter.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f"{what} name {name!r} is not valid; use lowercase letters, digits and '_', "
            "starting with a letter."
        )
    if len(name) > _MAX_NAME:
        raise DefinitionError(
            f"{what} name '{name[:20]}…' has {len(name)} characters; use at most {_MAX_NAME}."
        )
    return name
