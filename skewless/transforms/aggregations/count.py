"""``count``: how many events (or non-null values) fall in the window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from skewless.transforms.aggregations.base import Aggregator, OrderKey

__all__ = ["Count"]


class Count(Aggregator):
    """Number of non-null values; a bare count passes the event time, which is never null.

    >>> c = Count()
    >>> for v in (3, None, 5):
    ...     c.update(v, (0, 0, ""))
    >>> c.get()
    2
    """

    function = "count"
    reversible = True
    bounded_memory = True
    empty = 0

    def __init__(self) -> None:
        self.n = 0

    def sql(self, value: str, where: str, order: str, floating: bool) -> str:
        return f"count({value}) FILTER (WHERE {where})"

    def tile_sql(self, value: str, where: str, order: str, floating: bool) -> dict[str, tuple[str, str]]:
        return {"n": ("sum", self.sql(value, where, order, floating))}

    def result_sql(self, parts: Mapping[str, str]) -> str:
        return parts["n"]

    def update(self, value: Any, order: OrderKey) -> None:
        self.n += value is not None

    def revert(self, value: Any) -> None:
        """Remove one event's value again."""
        self.n -= value is not None

    def merge(self, other: Self) -> None:
        self.n += other.n

    def get(self) -> int:
        return self.n

    def load(self, parts: Mapping[str, Any]) -> Self:
        self.n = parts.get("n", 0)
        return self
