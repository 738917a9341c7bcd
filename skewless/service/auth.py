"""API keys: random tokens shown once, stored as SHA-256 hashes with scopes (read, write, admin).

A key looks like ``skl_<prefix>_<secret>``; the prefix finds the row, the hash proves the key.
Keys are 256-bit random, so a fast hash is safe (no password to brute-force). Verified keys are
cached in the process for ``cache_seconds`` to keep the database off the request path; a revoked
key therefore stops working within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from skewless._errors import ConfigError
from skewless.metadata import Database
from skewless.metadata.models import ApiKey, utcnow

__all__ = ["SCOPES", "ApiKeys", "AuthError", "request_key"]

SCOPES = ("read", "write", "admin")


class AuthError(Exception):
    """A request's key is missing or unknown (401) or lacks the scope (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Cached:
    scopes: frozenset[str]
    until: float


def request_key(headers: Mapping[str, str]) -> str | None:
    """The key a request sends: ``Authorization: Bearer <key>``, else ``X-API-Key`` (lower-case names)."""
    header = headers.get("authorization", "")
    return (
        header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else headers.get("x-api-key")
    )


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Create, list, revoke and verify API keys in the metadata database."""

    def __init__(self, database: Database, *, cache_seconds: float = 30.0) -> None:
        self.database = database
        self.cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}

    def create(self, name: str, scopes: list[str]) -> str:
        """A new key with ``scopes``; the plaintext is returned once and never stored."""
        if not name.strip() or len(name) > 200 or "\n" in name:
            raise ConfigError(
                "a key's name says what it is for, in one line of 1-200 characters, e.g. checkout-service."
            )
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise ConfigError(
                f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}."
            )
        prefix = secrets.token_hex(4)
        key = f"skl_{prefix}_{secrets.token_urlsafe(32)}"
        with self.database.session() as session:
            session.add(ApiKey(name=name, prefix=prefix, key_hash=_hash(key), scopes=sorted(set(scopes))))
        return key

    def revoke(self, prefix: str) -> bool:
        """Revoke the key with ``prefix``; False if there is no such active key."""
        with self.database.session() as session:
            row = session.scalars(
                select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
            ).first()
            if row is None:
                return False
            row.revoked_at = utcnow()
        return True

    def list(self) -> list[ApiKey]:
        """Every key, newest first (hashes, never plaintext)."""
        with self.database.session() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))

    def verify(self, key: str | None, scope: str) -> None:
        """Raise ``AuthError`` unless ``key`` is active and has ``scope`` (admin has every scope)."""
        if not key:
            raise AuthError(
                401,
                "missing API key; send 'Authorization: Bearer <key>' (create one with `skewless keys create`).",
            )
        scopes = self._scopes(key)
        if scopes is None:
            raise AuthError(401, "unknown or revoked API key.")
        if scope not in scopes and "admin" not in scopes:
            raise AuthError(
                403, f"this API key lacks the '{scope}' scope (it has: {', '.join(sorted(scopes))})."
            )

    async def verify_async(self, key: str | None, scope: str) -> None:
        """``verify`` for a request handler: from memory when cached, else the database lookup
        runs in a thread, off the event loop."""
        if self.is_cached(key):
            self.verify(key, scope)
        else:
            await run_in_threadpool(self.verify, key, scope)

    def is_cached(self, key: str | None) -> bool:
        """Whether ``verify(key, ...)`` answers from memory, without the database."""
        cached = self._cache.get(key) if key else None
        return cached is not None and cached.until > time.monotonic()

    def _scopes(self, key: str) -> frozenset[str] | None:
        if self.is_cached(key):
            return self._cache[key].scopes
        parts = key.split("_")
        if len(parts) < 3 or parts[0] != "skl":
            return None
        with self.database.session() as session:
            row = session.scalars(
                select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None))
            ).first()
            if row is None or not hmac.compare_digest(row.key_hash, _hash(key)):
                return None
            row.last_used_at = utcnow()
            scopes = frozenset(row.scopes)
        self._cache[key] = _Cached(scopes, time.monotonic() + self.cache_seconds)
        return scopes
