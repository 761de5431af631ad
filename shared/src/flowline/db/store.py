"""A Litestar store over PostgreSQL: what one api replica keeps there (rate-limit budgets), every replica sees."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from litestar.stores.base import Store


def _seconds(duration: int | timedelta | None) -> float | None:
    return duration.total_seconds() if isinstance(duration, timedelta) else duration


class PostgresStore(Store):
    """Litestar's :class:`Store` over the ``store_entries`` table; ``namespace`` keeps its users' keys apart.

    Expired entries read as absent; :meth:`delete_expired` removes them. Each call is one statement, so a
    read followed by a write (as Litestar's rate limiter does) is not atomic across replicas.
    """

    def __init__(self, pool: asyncpg.Pool, namespace: str) -> None:
        self._pool = pool
        self._namespace = namespace

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        """Store ``value`` under ``key``, for ``expires_in`` (seconds) or for good."""
        await self._pool.execute(
            "INSERT INTO store_entries (namespace, key, value, expires_at) "
            "VALUES ($1, $2, $3, now() + make_interval(secs => $4)) "
            "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            self._namespace,
            key,
            value.encode() if isinstance(value, str) else value,
            _seconds(expires_in),
        )

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        """The value of ``key`` unless absent or expired; ``renew_for`` restarts an expiring key's clock."""
        if renew_for is None:
            value: bytes | None = await self._pool.fetchval(
                "SELECT value FROM store_entries WHERE namespace = $1 AND key = $2 "
                "AND (expires_at IS NULL OR expires_at > now())",
                self._namespace,
                key,
            )
            return value
        value = await self._pool.fetchval(
            "UPDATE store_entries SET expires_at = now() + make_interval(secs => $3) "
            "WHERE namespace = $1 AND key = $2 AND expires_at IS NOT NULL AND expires_at > now() RETURNING value",
            self._namespace,
            key,
            _seconds(renew_for),
        )
        return value if value is not None else await self.get(key)

    async def delete(self, key: str) -> None:
        """Forget ``key``; an absent key is no error."""
        await self._pool.execute("DELETE FROM store_entries WHERE namespace = $1 AND key = $2", self._namespace, key)

    async def delete_all(self) -> None:
        """Forget every key of this namespace."""
        await self._pool.execute("DELETE FROM store_entries WHERE namespace = $1", self._namespace)

    async def delete_expired(self) -> None:
        """Remove the expired entries of this namespace (they already read as absent)."""
        await self._pool.execute(
            "DELETE FROM store_entries WHERE namespace = $1 AND expires_at <= now()", self._namespace
        )

    async def exists(self, key: str) -> bool:
        """Whether ``key`` is present and not expired."""
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        """Whole seconds until ``key`` expires; None when it is absent or never expires."""
        seconds: int | None = await self._pool.fetchval(
            "SELECT floor(extract(epoch FROM expires_at - now()))::int FROM store_entries "
            "WHERE namespace = $1 AND key = $2 AND expires_at > now()",
            self._namespace,
            key,
        )
        return seconds
