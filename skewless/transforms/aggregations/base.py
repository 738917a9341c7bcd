"""The contract every aggregation function follows (river-style).

Each function is a small class that knows two things: how the batch executor computes it in SQL
over the events of a window, and how partial state is kept, merged and read (the incremental
executor keeps one state per tile and merges the tiles in range). Settings live in the
constructor; state lives apart and ``clone()`` returns a fresh one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Self

__all__ = ["Aggregator", "OrderKey"]

#: How events are ordered for ``last``: (event time µs, ingest time µs, event id).
OrderKey = tuple[int, int, str]


class Aggregator(ABC):
    """One aggregation function: SQL for the batch executor, mergeable state for the incremental one."""

    #: Name used in definitions, e.g. ``Aggregation("sum", ...)``.
    function: ClassVar[str]
    #: True when an event's contribution can be removed again (sum, count).
    reversible: ClassVar[bool]
    #: True when state size does not grow with the number of events.
    bounded_memory: ClassVar[bool]
    #: What the function returns over no (non-null) events.
    empty: ClassVar[Any] = None
    #: True when the result depends on the order of events (docs/semantics.md §5): the batch
    #: executor then ranks the events by that order for the function's column.
    ordered: ClassVar[bool] = False

    @abstractmethod
    def sql(self, value: str, where: str, order: str, floating: bool) -> str:
        """SQL aggregate of expression ``value`` over the joined events that satisfy ``where``.

        ``order`` is an integer expression that ranks the events as docs/semantics.md §5 orders
        them for this value (event time, ingest time, event id, then the value itself); only
        order-sensitive functions (``last``) use it. ``floating`` is true for a floating-point
        ``value``: sums of floats are then compensated (``fsum``), so that the order in which
        DuckDB's threads add them cannot change the result, and a training set is rebuilt
        identically."""

    def window_sql(self, value: str, window: str, order: str, floating: bool) -> str:
        """The same aggregate as a window function over the named SQL ``window`` (a frame per
        entity row, ``window_sql.sweep_sql``), entity rows in it holding null values."""
        return f"{self.sql(value, 'TRUE', order, floating)} OVER {window}"

    def tile_sql(
        self, value: str, where: str, order: str, floating: bool
    ) -> dict[str, tuple[str, str]] | None:
        """The parts of a tile's state as SQL aggregates over the raw events that satisfy
        ``where``, by part name: ``(merge, aggregate)``, where ``merge`` says how parts of two
        tiles combine — ``sum``, ``fsum`` (floats, summed so that the order DuckDB's threads add
        them in cannot change the result), ``min``, ``max``, or ``at_max:<part>`` (the part of the
        tile with the greatest ``<part>``). ``floating`` is true for a floating-point ``value``.
        None when the batch executor cannot use tiles for the function."""
        return None

    def result_sql(self, parts: Mapping[str, str]) -> str:
        """The result from the merged parts of ``tile_sql`` (SQL expressions by part name)."""
        raise NotImplementedError(f"{self.function} has no tiles")

    @abstractmethod
    def update(self, value: Any, order: OrderKey) -> None:
        """Add one event's value (None for a null) with its order key."""

    @abstractmethod
    def merge(self, other: Self) -> None:
        """Absorb another state of the same function (e.g. another tile)."""

    @abstractmethod
    def get(self) -> Any:
        """The current result."""

    @abstractmethod
    def load(self, parts: Mapping[str, Any]) -> Self:
        """Take the state of one tile as the online store keeps it, parsed: ``n`` count, ``s``
        sum, ``m`` min or max, ``o``/``v`` order and value of ``last``, ``d`` distinct values
        (absent parts: nothing counted). Returns self, so reads merge tiles with ``merge``."""

    def clone(self) -> Self:
        """A new, empty state of the same function."""
        return type(self)()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
