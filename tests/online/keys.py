"""What tests check of a windowed view's keys in Redis, whichever path wrote them."""

from __future__ import annotations

import redis


def kept_forever(client: redis.Redis, view: str) -> list[bytes]:
    """The keys of ``view`` that have no expiry. For a view with a TTL there must be none: tiles
    and sets expire once no window can read them, the seen set after its last deadline, ``latest``
    at twice the TTL (docs/architecture.md, "Expiry, once per key")."""
    keys = client.scan_iter(match=f"skl:{{{view}|*", count=1000)
    return [key for key in keys if client.pttl(key) == -1]
