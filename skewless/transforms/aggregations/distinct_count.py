"""``distinct_count``: how many different non-null values the window holds (exact)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from skewless.transforms.aggregations.base import Aggregator, OrderKey

__all__ = ["DistinctCount"]


class DistinctCount(Aggregator):
    """Exact number of distinct non-null values; a tile keeps its set of values.

    >>> d = DistinctCount()
    >>> for v in ("a", "b", "a", None):
    ...     d.update(v, (0, 0, ""))
    >>> d.get()
    2
    """

    function = "distinct_count"
    reversible = False
    bounded_memory = False
    empty = 0

    def __init__(self) -> None:
        self.values: set[Any] = set()

    def sql(self, value: str, where: str, order: str, floating: bool) -> str:
        # Not count(DISTINCT): DuckDB 1.x's distinct aggregates cost about half of the training-set
        # query (2.3 s against 1.75 s, 100k rows). DuckDB 2's is 7% faster on the 100k-row query
        # but 22% slower at 10M events (44.5M row-event pairs per chunk: 44 s against 36 s).
        return f"list_unique(list({value}) FILTER (WHERE {where}))"

    def window_sql(self, value: str, window: str, order: str, floating: bool) -> str:
        return f"count(DISTINCT {value}) OVER {window}"  # a list per frame would not scale

    def update(self, value: Any, order: OrderKey) -> None:
        if value is not None:
            self.values.add(value)

    def merge(self, other: Self) -> None:
        self.values |= other.values

    def get(self) -> int:
        return len(self.values)

    def load(self, parts: Mapping[str, Any]) -> Self:
        self.values = set(parts.get("d", ()))
        return self
