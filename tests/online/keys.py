"""What tests check of a windowed view's keys in Redis, whichever path wrote them."""

from __future__ import annotations

import redis


def expiries(client: redis.Redis, view: str) -> dict[bytes, int]:
    """Every key of ``view`` with the milliseconds it has left (-1: no expiry)."""
    return {key: client.pttl(key) for key in client.scan_iter(match=f"skl:{{{view}|*", count=1000)}


def kept_forever(client: redis.Redis, view: str) -> list[bytes]:
    """The keys of ``view`` that have no expiry. For a view with a TTL there must be none: tiles
    and sets expire once no window can read them, the seen set after its last deadline, ``latest``
    at twice the TTL (docs/architecture.md, "Expiry, once per key")."""
    return [key for key, ttl in expiries(client, view).items() if ttl == -1]
