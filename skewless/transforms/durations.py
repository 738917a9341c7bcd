"""Durations as users write them ("10m", "1h", "7d") and as skewless stores them (timedelta).

One parser for windows, granularities, TTLs and lateness, so every definition reads time the same
way and every message about a bad duration looks the same.
"""

from __future__ import annotations

import re
from datetime import timedelta

from skewless._errors import DefinitionError

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(value: str | timedelta, *, what: str, allow_zero: bool = False) -> timedelta:
    """Read a positive duration such as ``"10m"`` or a ``timedelta``.

    ``what`` names the field in the error message, e.g. ``"view 'card_activity': window"``;
    ``allow_zero`` admits ``"0s"`` (for lateness, where none is a valid choice).

    >>> parse_duration("90m", what="window")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("1 hour", what="window")
    Traceback (most recent call last):
    ...
    skewless._errors.DefinitionError: window: '1 hour' is not a duration; write a whole number and one unit of s, m, h, d, w, e.g. '10m' or '7d'.
    """
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, str) and (match := _PATTERN.match(value.strip())):
        delta = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise DefinitionError(
            f"{what}: {value!r} is not a duration; write a whole number and one unit of "
            "s, m, h, d, w, e.g. '10m' or '7d'."
        )
    too_small = delta < timedelta(0) or (delta == timedelta(0) and not allow_zero)
    if too_small or delta % timedelta(seconds=1):
        raise DefinitionError(f"{what}: {value!r} must be a positive whole number of seconds.")
    return delta


def format_duration(delta: timedelta) -> str:
    """Write a duration in the largest of d, h, m, s that divides it exactly.

    >>> format_duration(timedelta(days=7)), format_duration(timedelta(minutes=90))
    ('7d', '90m')
    """
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    for unit in "dhms":
        size = _UNITS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")
