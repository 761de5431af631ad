"""Workflow definitions and their immutable versions."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from flowline.errors import Conflict, NotFound
from flowline.ids import uuid7

WORKFLOW_COLUMNS = """
    w.id, w.ref, w.name, w.label, w.description, w.tags, w.enabled, w.latest_version, w.created_by,
    w.created_at, w.updated_at, p.ref AS pack, v.id AS version_id, v.version, v.definition, v.input_schema,
    v.output_schema
"""


async def ensure_pack(connection: asyncpg.Connection, tenant_id: uuid.UUID, ref: str) -> uuid.UUID:
    """The id of the pack ``ref``, created on first use."""
    pack_id = await connection.fetchval(
        "SELECT id FROM packs WHERE tenant_id = $1 AND ref = $2 AND deleted_at IS NULL", tenant_id, ref
    )
    if pack_id is None:
        pack_id = await connection.fetchval(
            "INSERT INTO packs (id, tenant_id, ref, label) VALUES ($1, $2, $3, $3) "
            "ON CONFLICT (tenant_id, ref) WHERE deleted_at IS NULL DO UPDATE SET ref = EXCLUDED.ref RETURNING id",
            uuid7(),
            tenant_id,
            ref,
        )
    return uuid.UUID(str(pack_id))


async def create_workflow(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    ref: str,
    label: str | None,
    description: str | None,
    tags: list[str],
    enabled: bool,
    definition: Any,
    input_schema: Any,
    output_schema: Any,
    created_by: str | None,
) -> asyncpg.Record:
    """Insert a workflow and its version 1 inside the caller's transaction.

    Raises:
        Conflict: a live workflow with this ref exists.
    """
    pack, name = ref.split(".", 1)
    pack_id = await ensure_pack(connection, tenant_id, pack)
    workflow_id = uuid7()
    try:
        await connection.execute(
            "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, label, description, tags, enabled, "
            "latest_version, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10)",
            workflow_id,
            tenant_id,
            pack_id,
            ref,
            name,
            label,
            description,
            tags,
            enabled,
            created_by,
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"workflow {ref!r} already exists") from err
    await connection.execute(
        "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition, input_schema, "
        "output_schema, created_by) VALUES ($1, $2, $3, 1, $4, $5, $6, $7)",
        uuid7(),
        tenant_id,
        workflow_id,
        definition,
        input_schema,
        output_schema,
        created_by,
    )
    return await read_workflow(connection, tenant_id, ref)


async def read_workflow(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    ref: str,
    version: int | None = None,
) -> asyncpg.Record:
    """A live workflow joined with one version (the latest unless ``version`` is given).

    Raises:
        NotFound: no live workflow ``ref``, or it has no such version.
    """
    record = await connection.fetchrow(
        f"""
        SELECT {WORKFLOW_COLUMNS}
        FROM workflows w
        JOIN packs p ON p.id = w.pack_id
        JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = coalesce($3, w.latest_version)
        WHERE w.tenant_id = $1 AND w.ref = $2 AND w.deleted_at IS NULL
        """,
        tenant_id,
        ref,
        version,
    )
    if record is None:
        if version is not None and await connection.fetchval(
            "SELECT 1 FROM workflows WHERE tenant_id = $1 AND ref = $2 AND deleted_at IS NULL", tenant_id, ref
        ):
            raise NotFound(f"workflow {ref!r} has no version {version}")
        raise NotFound(f"workflow {ref!r} does not exist")
    return record
