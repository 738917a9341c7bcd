"""Definition versions: a short content hash of a declaration's plain-data spec."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["content_version"]


def content_version(spec: dict[str, Any]) -> str:
    """Twelve hex digits of SHA-256 over the canonical JSON of ``spec``.

    >>> content_version({"name": "card", "join_key": "card_id"})
    '707221e24653'
    """
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
