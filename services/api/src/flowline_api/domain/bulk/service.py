"""Bulk operations: the api stores them (or only counts, for a dry run); the scheduler works them through."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import msgspec
from flowline.db.audit import Actor, field_changes, record_audit
from flowline.db.bulk_operations import (
    BulkKind,
    BulkSelection,
    create_bulk_operation,
    read_bulk_operation,
)
from flowline.db.execution_reads import ExecutionFilters, first_hidden_execution
from flowline.domain.credentials import Principal
from flowline.errors import NotFound, ValidationFailed
from flowline_schemas.bulk import BulkOperation, BulkOperationError
from litestar.di import NamedDependency

from flowline_api.domain.bulk.schemas import BulkCancelRequest, BulkDeleteRequest, BulkRetryRequest
from flowline_api.domain.executions.filters import execution_filters, owner_filter

BulkRequest = BulkCancelRequest | BulkRetryRequest | BulkDeleteRequest
ENTITY_TYPE = "bulk_operation"


def _selection(request: BulkRequest, caller: Principal) -> BulkSelection:
    """The executions a request selects, with the list's own filter.

    Raises:
        ValidationFailed: both ``ids`` and ``filter``, neither, or a filter without a condition.
    """
    if (request.ids is None) == (request.filter is None):
        raise ValidationFailed("give either ids or filter, not both and not neither", pointer="")
    if request.ids is not None:
        return BulkSelection(ids=sorted(set(request.ids)))
    given = request.filter
    assert given is not None
    filters = execution_filters(
        workflow=given.workflow,
        statuses=given.status,
        triggered_by=given.triggered_by,
        started_by=given.started_by,
        parent_id=given.parent_id,
        schedule_id=given.schedule_id,
        created_after=given.created_after,
        created_before=given.created_before,
        tags=given.tag,
        metadata=given.metadata,
        search=given.search,
        caller=caller,
    )
    if replace(filters, visible_to=None) == ExecutionFilters():
        # An empty filter would select every execution of the tenant: too easy to send by mistake.
        raise ValidationFailed("filter: give at least one condition", pointer="/filter")
    return BulkSelection(filter=filters)


def to_operation(record: asyncpg.Record) -> BulkOperation:
    """The response body of an operation row."""
    return BulkOperation(
        id=str(record["id"]),
        kind=record["kind"],
        status=record["status"],
        dry_run=record["dry_run"],
        note=record["note"],
        total=record["total"],
        succeeded=record["succeeded"],
        failed=record["failed"],
        skipped=record["skipped"],
        errors=msgspec.convert(record["errors"], list[BulkOperationError]),
        created_at=record["created_at"],
        started_at=record["started_at"],
        completed_at=record["completed_at"],
    )


class BulkOperationService:
    """Creates bulk operations and reads their progress."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        tenant_id: uuid.UUID,
        kind: BulkKind,
        request: BulkRequest,
        caller: Principal,
        actor: Actor,
    ) -> BulkOperation:
        """Store an operation over the selected executions, with its audit row; the scheduler applies it.

        A dry run is stored completed, with ``total`` the number of selected executions, and changes nothing.

        Raises:
            ValidationFailed: both ``ids`` and ``filter`` given, or neither, or an empty filter.
            ClientError: an unknown status in the filter.
            NotFound: one of the ``ids`` is not an execution of this tenant.
        """
        selection = _selection(request, caller)
        note = request.note if isinstance(request, BulkRetryRequest) else request.reason
        async with self._pool.acquire() as connection, connection.transaction():
            if (
                selection.ids is not None
                and (owner := owner_filter(caller)) is not None
                and (hidden := await first_hidden_execution(connection, tenant_id, selection.ids, owner))
            ):
                raise NotFound(f"execution {hidden} does not exist")  # exactly like an id that does not exist
            record = await create_bulk_operation(
                connection,
                tenant_id=tenant_id,
                kind=kind,
                selection=selection,
                note=note,
                dry_run=request.dry_run,
                created_by=caller.subject,
            )
            audited: dict[str, Any] = {"kind": kind, "total": record["total"], **msgspec.to_builtins(request)}
            await record_audit(
                connection,
                tenant_id=tenant_id,
                entity_type=ENTITY_TYPE,
                entity_id=str(record["id"]),
                action="create",
                actor=actor,
                changes=field_changes(None, audited),
            )
        return to_operation(record)

    async def read(self, tenant_id: uuid.UUID, operation_id: uuid.UUID, caller: Principal) -> BulkOperation:
        """An operation and its progress, for the principal that created it or an admin (as executions are).

        Raises:
            NotFound: no such operation in this tenant, or another principal's.
        """
        record = await read_bulk_operation(self._pool, tenant_id, operation_id, visible_to=owner_filter(caller))
        return to_operation(record)


def provide_bulk_operation_service(pool: NamedDependency[asyncpg.Pool]) -> BulkOperationService:
    """A bulk operation service for this request."""
    return BulkOperationService(pool)
