"""``mean``: average of the non-null values in the window (null over none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from skewless.transforms.aggregations.base import Aggregator, OrderKey

__all__ = ["Mean"]


class Mean(Aggregator):
    """Mean of non-null values, kept as a sum and a count so tiles merge exactly.

    >>> m = Mean()
    >>> for v in (1, 2, None, 6):
    ...     m.update(v, (0, 0, ""))
    >>> m.get()
    3.0
    """

    function = "mean"
    reversible = True
    bounded_memory = True

    def __init__(self) -> None:
        self.total: float = 0.0
        self.n = 0

    def sql(self, value: str, where: str, order: str, floating: bool) -> str:
        return f"{'favg' if floating else 'avg'}({value}) FILTER (WHERE {where})"

    def tile_sql(self, value: str, where: str, order: str, floating: bool) -> dict[str, tuple[str, str]]:
        return {
            "s": ("fsum", f"fsum({value}) FILTER (WHERE {where})"),  # floats whatever the input
            "n": ("sum", f"count({value}) FILTER (WHERE {where})"),
        }

    def result_sql(self, parts: Mapping[str, str]) -> str:
        return f"{parts['s']} / nullif({parts['n']}, 0)"

    def update(self, value: Any, order: OrderKey) -> None:
        if value is not None:
            self.total += value
            self.n += 1

    def revert(self, value: Any) -> None:
        """Remove one event's value again."""
        if value is not None:
            self.total -= value
            self.n -= 1

    def merge(self, other: Self) -> None:
        self.total += other.total
        self.n += other.n

    def get(self) -> float | None:
        return self.total / self.n if self.n else None

    def load(self, parts: Mapping[str, Any]) -> Self:
        self.total, self.n = parts.get("s", 0.0), parts.get("n", 0)
        return self
