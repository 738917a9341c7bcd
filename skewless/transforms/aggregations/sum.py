"""``sum``: total of the non-null values in the window (0 over none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from skewless.transforms.aggregations.base import Aggregator, OrderKey

__all__ = ["HIGH", "Sum"]

#: An integer sum's tile keeps two parts, ``s + h·HIGH`` (parts ``s`` and ``h``): every value is
#: split so that ``-HIGH/2 ≤ s < HIGH/2`` and ``|h| ≤ HIGH/2``. Redis adds 64-bit integers and fails
#: past them, halfway through a script it cannot undo; added up in two parts, a tile overflows
#: only after 2³² events of one entity, whatever the values (docs/semantics.md §5).
HIGH = 1 << 32


class Sum(Aggregator):
    """Sum of non-null values; booleans count as 0/1.

    >>> s = Sum()
    >>> for v in (1.5, None, 2.0):
    ...     s.update(v, (0, 0, ""))
    >>> s.get()
    3.5
    """

    function = "sum"
    reversible = True
    bounded_memory = True
    empty = 0

    def __init__(self) -> None:
        self.total: int | float = 0

    def sql(self, value: str, where: str, order: str, floating: bool) -> str:
        return f"{'fsum' if floating else 'sum'}({value}) FILTER (WHERE {where})"

    def tile_sql(self, value: str, where: str, order: str, floating: bool) -> dict[str, tuple[str, str]]:
        return {"s": ("fsum" if floating else "sum", self.sql(value, where, order, floating))}

    def result_sql(self, parts: Mapping[str, str]) -> str:
        return parts["s"]

    def update(self, value: Any, order: OrderKey) -> None:
        if value is not None:
            self.total += value

    def revert(self, value: Any) -> None:
        """Remove one event's value again."""
        if value is not None:
            self.total -= value

    def merge(self, other: Self) -> None:
        self.total += other.total

    def get(self) -> int | float:
        return self.total

    def load(self, parts: Mapping[str, Any]) -> Self:
        self.total = parts.get("s", 0) + parts.get("h", 0) * HIGH
        return self
