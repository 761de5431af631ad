"""Workflow definitions and their immutable versions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from flowline.db.packs import read_pack
from flowline.db.sql import bind
from flowline.domain.definitions import WorkflowDefinition
from flowline.errors import Conflict, NotFound
from flowline.runtime.ids import uuid7

WORKFLOW_COLUMNS = """
    w.id, w.pack_id, w.ref, w.name, w.label, w.description, w.tags, w.enabled, w.public, w.latest_version,
    w.retention_seconds, w.created_by,
    w.created_at, w.updated_at, split_part(w.ref, '.', 1) AS pack, v.id AS version_id, v.version, v.definition,
    v.input_schema, v.output_schema, v.created_at AS version_created_at
"""
# Lists leave out the versions (definitions can be large); a page reads one index and no join.
SUMMARY_COLUMNS = """
    w.id, w.ref, split_part(w.ref, '.', 1) AS pack, w.name, w.label, w.description, w.tags, w.enabled, w.public,
    w.latest_version AS version, w.retention_seconds, w.created_by, w.created_at, w.updated_at
"""
WorkflowSort = Literal["name", "created_at", "updated_at"]


@dataclass(frozen=True, slots=True)
class WorkflowFilters:
    """What a workflow list keeps: any of ``tags``, ``enabled``, ``search`` in name/label/description, ``pack``."""

    tags: list[str] | None = None
    enabled: bool | None = None
    search: str | None = None
    pack: str | None = None


_INSERT_WORKFLOW = """
    INSERT INTO workflows (id, tenant_id, pack_id, ref, name, label, description, tags, enabled, latest_version,
                           created_by, public, retention_seconds)
    VALUES (:id, :tenant_id, :pack_id, :ref, :name, :label, :description, :tags, :enabled, 1,
            :created_by, :public, :retention_seconds)
    """


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
    public: bool = False,
    retention_seconds: int | None = None,
) -> asyncpg.Record:
    """Insert a workflow and its version 1 inside the caller's transaction.

    Raises:
        NotFound: its pack does not exist.
        Conflict: a live workflow with this ref exists.
    """
    pack, name = ref.split(".", 1)
    pack_id = (await read_pack(connection, tenant_id, pack, lock="share"))["id"]
    workflow_id = uuid7()
    try:
        await connection.execute(
            *bind(
                _INSERT_WORKFLOW,
                id=workflow_id,
                tenant_id=tenant_id,
                pack_id=pack_id,
                ref=ref,
                name=name,
                label=label,
                description=description,
                tags=tags,
                enabled=enabled,
                created_by=created_by,
                public=public,
                retention_seconds=retention_seconds,
            )
        )
    except asyncpg.UniqueViolationError as err:
        raise Conflict(f"workflow {ref!r} already exists") from err
    await add_workflow_version(
        connection,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        version=1,
        definition=definition,
        input_schema=input_schema,
        output_schema=output_schema,
        created_by=created_by,
    )
    return await read_workflow(connection, tenant_id, ref)


async def add_workflow_version(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    workflow_id: uuid.UUID,
    version: int,
    definition: Any,
    input_schema: Any,
    output_schema: Any,
    created_by: str | None,
) -> None:
    """Insert an immutable version and make it the workflow's latest."""
    await connection.execute(
        "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition, input_schema, "
        "output_schema, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        uuid7(),
        tenant_id,
        workflow_id,
        version,
        definition,
        input_schema,
        output_schema,
        created_by,
    )
    await connection.execute(
        "UPDATE workflows SET latest_version = $2, updated_at = now() WHERE id = $1", workflow_id, version
    )


async def update_workflow_metadata(
    connection: asyncpg.Connection,
    workflow_id: uuid.UUID,
    *,
    label: str | None,
    description: str | None,
    tags: list[str],
    enabled: bool,
    public: bool = False,
    retention_seconds: int | None = None,
) -> None:
    """Replace what may change without a new version: label, description, tags, enabled, public, retention."""
    await connection.execute(
        "UPDATE workflows SET label = $2, description = $3, tags = $4, enabled = $5, public = $6, "
        "retention_seconds = $7, updated_at = now() WHERE id = $1",
        workflow_id,
        label,
        description,
        tags,
        enabled,
        public,
        retention_seconds,
    )


async def delete_workflow(connection: asyncpg.Connection, workflow_id: uuid.UUID) -> None:
    """Soft-delete a workflow: its ref disappears and can be defined again; executions keep pointing at it."""
    await connection.execute("UPDATE workflows SET deleted_at = now(), updated_at = now() WHERE id = $1", workflow_id)


async def read_workflow(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    ref: str,
    version: int | None = None,
    *,
    for_update: bool = False,
) -> asyncpg.Record:
    """A live workflow joined with one version (the latest unless ``version`` is given).

    ``for_update`` first locks the workflow row until the caller's transaction ends (to change it), waiting for
    a transaction that holds it; the read that follows sees what that transaction committed.

    Raises:
        NotFound: no live workflow ``ref``, or it has no such version.
    """
    # Locking in the read itself would not do: after the wait, PostgreSQL rechecks the join with the newer
    # workflow row but the version rows of the statement's older snapshot, which lack a just-added latest one.
    if for_update and not await connection.fetchval(
        "SELECT 1 FROM workflows WHERE tenant_id = $1 AND ref = $2 AND deleted_at IS NULL FOR UPDATE", tenant_id, ref
    ):
        raise NotFound(f"workflow {ref!r} does not exist")
    record: asyncpg.Record | None = await connection.fetchrow(
        f"""
        SELECT {WORKFLOW_COLUMNS}
        FROM workflows w
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


async def read_version_id(
    connection: asyncpg.Connection | asyncpg.Pool, *, tenant_id: uuid.UUID, ref: str, version: int
) -> uuid.UUID:
    """The id of one version of a live workflow, without its definition (which may be large).

    Raises:
        NotFound: no live workflow ``ref``, or it has no such version.
    """
    version_id: uuid.UUID | None = await connection.fetchval(
        *bind(
            "SELECT v.id FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id AND v.version = :version "
            "WHERE w.tenant_id = :tenant_id AND w.ref = :ref AND w.deleted_at IS NULL",
            tenant_id=tenant_id,
            ref=ref,
            version=version,
        )
    )
    if version_id is None:
        raise NotFound(f"workflow {ref!r} has no version {version}")
    return version_id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(tenant_id: uuid.UUID, filters: WorkflowFilters) -> tuple[list[str], list[Any]]:
    """The conditions of a filtered list and their arguments ($1 is the tenant)."""
    conditions = ["w.tenant_id = $1", "w.deleted_at IS NULL"]
    arguments: list[Any] = [tenant_id]

    def argument(value: Any) -> str:
        arguments.append(value)
        return f"${len(arguments)}"

    if filters.tags:
        conditions.append(f"w.tags && {argument(filters.tags)}::text[]")
    if filters.enabled is not None:
        conditions.append(f"w.enabled = {argument(filters.enabled)}")
    if filters.search:
        pattern = argument(f"%{_escape_like(filters.search)}%")
        conditions.append(f"(w.name ILIKE {pattern} OR w.label ILIKE {pattern} OR w.description ILIKE {pattern})")
    if filters.pack is not None:
        conditions.append(
            f"w.pack_id = (SELECT id FROM packs WHERE tenant_id = $1 AND ref = {argument(filters.pack)} "
            "AND deleted_at IS NULL)"
        )
    return conditions, arguments


def list_workflows_query(
    tenant_id: uuid.UUID,
    filters: WorkflowFilters,
    *,
    sort: WorkflowSort,
    descending: bool,
    limit: int,
    offset: int,
    after: tuple[str | datetime, uuid.UUID] | None,
) -> tuple[str, list[Any]]:
    """The SQL of one page of workflows and its arguments (separate so that tests can EXPLAIN it)."""
    conditions, arguments = _where(tenant_id, filters)
    direction = "DESC" if descending else "ASC"
    if after is not None:
        arguments.extend(after)
        comparison = "<" if descending else ">"
        conditions.append(f"(w.{sort}, w.id) {comparison} (${len(arguments) - 1}, ${len(arguments)})")
    arguments.extend([limit, offset])
    query = (
        f"SELECT {SUMMARY_COLUMNS} FROM workflows w WHERE {' AND '.join(conditions)} "
        f"ORDER BY w.{sort} {direction}, w.id {direction} LIMIT ${len(arguments) - 1} OFFSET ${len(arguments)}"
    )
    return query, arguments


def count_workflows_query(tenant_id: uuid.UUID, filters: WorkflowFilters) -> tuple[str, list[Any]]:
    """The SQL counting the workflows of a filtered list, and its arguments."""
    conditions, arguments = _where(tenant_id, filters)
    return f"SELECT count(*) FROM workflows w WHERE {' AND '.join(conditions)}", arguments


async def list_workflows(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: WorkflowFilters,
    *,
    sort: WorkflowSort,
    descending: bool,
    limit: int,
    offset: int,
    after: tuple[str | datetime, uuid.UUID] | None = None,
) -> list[asyncpg.Record]:
    """One page of live workflows (without their definitions), after the keyset ``after`` when given."""
    query, arguments = list_workflows_query(
        tenant_id, filters, sort=sort, descending=descending, limit=limit, offset=offset, after=after
    )
    records: list[asyncpg.Record] = await connection.fetch(query, *arguments)
    return records


async def count_workflows(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, filters: WorkflowFilters
) -> int:
    """How many live workflows match ``filters``."""
    query, arguments = count_workflows_query(tenant_id, filters)
    count: int = await connection.fetchval(query, *arguments)
    return count


async def list_workflow_versions(
    connection: asyncpg.Connection | asyncpg.Pool,
    workflow_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    before: int | None,
) -> list[asyncpg.Record]:
    """The versions of a workflow, newest first, below ``before`` when given (keyset)."""
    records: list[asyncpg.Record] = await connection.fetch(
        "SELECT version, created_by, created_at FROM workflow_versions WHERE workflow_id = $1 "
        "AND ($2::int IS NULL OR version < $2) ORDER BY version DESC LIMIT $3 OFFSET $4",
        workflow_id,
        before,
        limit,
        offset,
    )
    return records


async def live_workflows_in_pack(connection: asyncpg.Connection, pack_id: uuid.UUID) -> list[asyncpg.Record]:
    """The id and ref of every live workflow of a pack, locked until the caller's transaction ends."""
    records: list[asyncpg.Record] = await connection.fetch(
        "SELECT id, ref FROM workflows WHERE pack_id = $1 AND deleted_at IS NULL ORDER BY ref FOR UPDATE", pack_id
    )
    return records


async def read_version_definition(connection: asyncpg.Connection, version_id: uuid.UUID) -> WorkflowDefinition:
    """The definition of the workflow version ``version_id`` (versions never change: safe to keep).

    Raises:
        NotFound: no such version.
    """
    return msgspec.convert(await read_version_document(connection, version_id=version_id), WorkflowDefinition)


async def read_version_document(connection: asyncpg.Connection | asyncpg.Pool, *, version_id: uuid.UUID) -> Any:
    """The definition of the workflow version ``version_id`` as stored (JSON, not checked again).

    Raises:
        NotFound: no such version.
    """
    definition = await connection.fetchval(
        *bind("SELECT definition FROM workflow_versions WHERE id = :version_id", version_id=version_id)
    )
    if definition is None:
        raise NotFound(f"workflow version {version_id} does not exist")
    return definition


async def read_execution_input_schema(connection: asyncpg.Connection, execution_id: uuid.UUID) -> Any:
    """The input schema of the workflow version an execution runs (None: it takes any input)."""
    return await connection.fetchval(
        *bind(
            "SELECT v.input_schema FROM executions e JOIN workflow_versions v ON v.id = e.workflow_version_id "
            "WHERE e.id = :execution_id",
            execution_id=execution_id,
        )
    )
