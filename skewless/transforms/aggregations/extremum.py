"""``min`` and ``max``: the smallest and largest non-null value in the window (null over none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from skewless.transforms.aggregations.base import Aggregator, OrderKey

__all__ = ["Max", "Min"]


class _Extremum(Aggregator):
    reversible = False
    bounded_memory = True
    _pick: ClassVar[Any]

    def __init__(self) -> None:
        self.value: Any = None

    def sql(self, value: str, where: str, order: str, floating: bool) -> str:
        return f"{self.function}({value}) FILTER (WHERE {where})"

    def tile_sql(self, value: str, where: str, order: str, floating: bool) -> dict[str, tuple[str, str]]:
        return {"m": (self.function, self.sql(value, where, order, floating))}

    def result_sql(self, parts: Mapping[str, str]) -> str:
        return parts["m"]

    def update(self, value: Any, order: OrderKey) -> None:
        if value is not None:
            self.value = value if self.value is None else type(self)._pick(self.value, value)

    def merge(self, other: Self) -> None:
        self.update(other.value, (0, 0, ""))

    def get(self) -> Any:
        return self.value

    def load(self, parts: Mapping[str, Any]) -> Self:
        self.value = parts.get("m")
        return self


class Min(_Extremum):
    """Smallest non-null value.

    >>> m = Min()
    >>> for v in (3, None, 1):
    ...     m.update(v, (0, 0, ""))
    >>> m.get()
    1
    """

    function = "min"
    _pick = min


class Max(_Extremum):
    """Largest non-null value.

    >>> m = Max()
    >>> for v in (3, None, 1):
    ...     m.update(v, (0, 0, ""))
    >>> m.get()
    3
    """

    function = "max"
    _pick = max
