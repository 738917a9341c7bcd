"""Entities: what features are about (a card, a merchant), and the key that identifies one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from skewless._errors import DefinitionError
from skewless.transforms._checks import check_name
from skewless.transforms.dtypes import dtype_name, validate_dtype
from skewless.transforms.versioning import content_version

__all__ = ["Entity"]


@dataclass(frozen=True, kw_only=True)
class Entity:
    """A thing features describe, identified by one join key column.

    Parameters
    ----------
    name
        Entity name, e.g. ``"card"``.
    join_key
        Column that identifies an entity in sources, entity frames and requests.
    dtype
        Polars type of the join key (``pl.String`` or ``pl.Int64``).

    Examples
    --------
    >>> card = Entity(name="card", join_key="card_id")
    >>> card.join_key, card.dtype
    ('card_id', String)
    """

    name: str
    join_key: str
    dtype: Any = field(default=pl.String)
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, what="entity")
        check_name(self.join_key, what=f"entity '{self.name}': join key")
        dtype = validate_dtype(self.dtype, what=f"entity '{self.name}': join key")
        if dtype_name(dtype) not in ("String", "Int64", "Int32"):
            raise DefinitionError(
                f"entity '{self.name}': join key type {dtype} is not supported; use pl.String or pl.Int64."
            )
        object.__setattr__(self, "dtype", dtype)

    @property
    def version(self) -> str:
        """Content hash of the declaration: its definition version."""
        return content_version(self.spec())

    def spec(self) -> dict[str, Any]:
        """The declaration as plain data: what the definition version hashes."""
        return {
            "kind": "entity",
            "name": self.name,
            "join_key": self.join_key,
            "dtype": dtype_name(self.dtype),
            "description": self.description,
        }
