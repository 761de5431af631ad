"""Tenant lookups."""

from __future__ import annotations

import uuid

import asyncpg

from flowline.errors import NotFound


async def read_tenant_id(connection: asyncpg.Connection | asyncpg.Pool, slug: str) -> uuid.UUID:
    """The id of the tenant ``slug``.

    Raises:
        NotFound: no such tenant.
    """
    tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
    if tenant_id is None:
        raise NotFound(f"tenant {slug!r} does not exist")
    return uuid.UUID(str(tenant_id))
