"""Packs: the namespaces that hold workflows (``<pack>.<name>``)."""

from __future__ import annotations

import uuid
from typing import Literal

import asyncpg

from flowline.errors import Conflict, NotFound
from flowline.runtime.ids import uuid7

PACK_COLUMNS = "id, ref, label, description, version, created_at, updated_at"


async def create_pack(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    ref: str,
    label: str | None,
    description: str | None,
    version: str | None,
) -> asyncpg.Record:
    """Insert a pack inside the caller's transaction.

    Raises:
        Conflict: a live pack with this ref exists.
    """
    try:
        record: asyncpg.Record = await connection.fetchrow(
            f"INSERT INTO packs (id, tenant_id, ref, label, description, version) VALUES ($1, $2, $3, $4, $5, $6) "
            f"RETURNING {PACK_COLUMNS}",
            uuid7(),
            tenant_id,
            ref,
            label,
            description,
            version,
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"pack {ref!r} already exists") from err
    return record


async def read_pack(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    ref: str,
    *,
    lock: Literal["share", "update"] | None = None,
) -> asyncpg.Record:
    """The live pack ``ref``; ``lock`` holds a row lock until the caller's transaction ends.

    A workflow being added takes a share lock, a pack being changed or deleted an update lock: a pack
    cannot be deleted while a workflow is being created in it.

    Raises:
        NotFound: no live pack ``ref``.
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {PACK_COLUMNS} FROM packs WHERE tenant_id = $1 AND ref = $2 AND deleted_at IS NULL"
        + (f" FOR {lock.upper()}" if lock else ""),
        tenant_id,
        ref,
    )
    if record is None:
        raise NotFound(f"pack {ref!r} does not exist")
    return record


async def update_pack(
    connection: asyncpg.Connection,
    pack_id: uuid.UUID,
    *,
    label: str | None,
    description: str | None,
    version: str | None,
) -> asyncpg.Record:
    """Replace a pack's label, description and version."""
    record: asyncpg.Record = await connection.fetchrow(
        f"UPDATE packs SET label = $2, description = $3, version = $4, updated_at = now() WHERE id = $1 "
        f"RETURNING {PACK_COLUMNS}",
        pack_id,
        label,
        description,
        version,
    )
    return record


async def delete_pack(connection: asyncpg.Connection, pack_id: uuid.UUID) -> None:
    """Soft-delete a pack: its ref disappears and can be created again."""
    await connection.execute("UPDATE packs SET deleted_at = now(), updated_at = now() WHERE id = $1", pack_id)


async def list_packs(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    after_ref: str | None,
) -> list[asyncpg.Record]:
    """Live packs by ref, ``offset`` skipped, only those after ``after_ref`` when given (keyset)."""
    records: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {PACK_COLUMNS} FROM packs WHERE tenant_id = $1 AND deleted_at IS NULL "
        "AND ($2::text IS NULL OR ref > $2) ORDER BY ref LIMIT $3 OFFSET $4",
        tenant_id,
        after_ref,
        limit,
        offset,
    )
    return records


async def count_packs(connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID) -> int:
    """How many live packs the tenant has."""
    count: int = await connection.fetchval(
        "SELECT count(*) FROM packs WHERE tenant_id = $1 AND deleted_at IS NULL", tenant_id
    )
    return count
