"""``last``: the value of the latest event in the window (null over none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from skewless.transforms.aggregations.base import Aggregator, OrderKey

__all__ = ["Last"]


class Last(Aggregator):
    """Value of the latest non-null event by (event time, ingest time, event id), then by value,
    so the result never depends on arrival order.

    >>> last = Last()
    >>> last.update(5, (20, 21, "b"))
    >>> last.update(9, (10, 30, "a"))  # arrived later, but happened earlier
    >>> last.get()
    5
    """

    function = "last"
    reversible = False
    bounded_memory = True
    ordered = True

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None

    def sql(self, value: str, where: str, order: str, floating: bool) -> str:
        # arg_max over one integer rank: over a struct of (event, ingest, id, value) it took a
        # third of the training-set query, and an ordered aggregate sorts every group.
        return f"arg_max({value}, {order}) FILTER (WHERE {where} AND {value} IS NOT NULL)"

    def tile_sql(self, value: str, where: str, order: str, floating: bool) -> dict[str, tuple[str, str]]:
        latest = f"FILTER (WHERE {where} AND {value} IS NOT NULL)"
        return {
            "r": ("max", f"max({order}) {latest}"),
            "v": ("at_max:r", self.sql(value, where, order, floating)),
        }

    def result_sql(self, parts: Mapping[str, str]) -> str:
        return parts["v"]

    def update(self, value: Any, order: OrderKey) -> None:
        if value is not None and (self.key is None or (*order, value) > self.key):
            self.key = (*order, value)

    def merge(self, other: Self) -> None:
        if other.key is not None and (self.key is None or other.key > self.key):
            self.key = other.key

    def get(self) -> Any:
        return None if self.key is None else self.key[-1]

    def load(self, parts: Mapping[str, Any]) -> Self:
        if parts.get("o") is not None:  # "event µs|ingest µs|id", as the incremental executor writes it
            event_us, ingest_us, event_id = parts["o"].split("|", 2)
            self.key = (int(event_us), int(ingest_us), event_id, parts["v"])
        return self
