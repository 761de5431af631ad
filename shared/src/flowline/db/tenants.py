"""Tenant lookups, and a tenant's default execution retention."""

from __future__ import annotations

import uuid

import asyncpg

from flowline.db.audit import Actor, record_audit
from flowline.db.sql import bind
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


async def read_tenant_retention(connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID) -> int | None:
    """A tenant's default execution retention in seconds (None: the server's)."""
    seconds: int | None = await connection.fetchval(
        *bind("SELECT retention_seconds FROM tenants WHERE id = :tenant_id", tenant_id=tenant_id)
    )
    return seconds


async def update_tenant_retention(
    connection: asyncpg.Connection, *, tenant_id: uuid.UUID, retention_seconds: int | None, actor: Actor
) -> None:
    """Set a tenant's default execution retention (None: the server's), audited in the caller's transaction.

    It applies to the executions of the tenant's workflows that set no retention of their own.

    Raises:
        NotFound: no such tenant.
    """
    record = await connection.fetchrow(
        *bind("SELECT id, slug, retention_seconds FROM tenants WHERE id = :tenant_id FOR UPDATE", tenant_id=tenant_id)
    )
    if record is None:
        raise NotFound(f"tenant {tenant_id} does not exist")
    slug = record["slug"]
    if record["retention_seconds"] == retention_seconds:
        return
    await connection.execute(
        *bind(
            "UPDATE tenants SET retention_seconds = :retention_seconds WHERE id = :id",
            id=record["id"],
            retention_seconds=retention_seconds,
        )
    )
    await record_audit(
        connection,
        tenant_id=record["id"],
        entity_type="tenant",
        entity_id=slug,
        action="update",
        actor=actor,
        changes={"retention_seconds": {"before": record["retention_seconds"], "after": retention_seconds}},
    )
