"""Bulk operations: a cancel, retry or delete of many executions (by ids or a filter), or a schedule's backfill."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal, NamedTuple

import asyncpg
import msgspec

from flowline.db.execution_reads import ExecutionFilters, count_executions_query, matching_ids_query, resolve_search
from flowline.db.sql import bind, typed
from flowline.errors import NotFound
from flowline.runtime.ids import uuid7

BulkKind = Literal["cancel", "retry", "delete", "backfill"]
MAX_IDS = 1_000
# An operation over a million executions keeps the first errors, not a million of them.
MAX_ERRORS = 100


class ScheduleWindow(msgspec.Struct, frozen=True, kw_only=True):
    """A backfill's work: the runs of a schedule for its fire times in [start, end)."""

    schedule_id: uuid.UUID
    start: datetime
    end: datetime


class BulkSelection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What an operation works on: these executions, every match of a list filter, or a backfill's window."""

    ids: list[uuid.UUID] | None = None
    filter: ExecutionFilters | None = None
    backfill: ScheduleWindow | None = None


def _created_before(filters: ExecutionFilters, until: datetime) -> ExecutionFilters:
    """Only executions created before the operation: one started while it runs is not what the caller saw."""
    before = until if filters.created_before is None else min(filters.created_before, until)
    return replace(filters, created_before=before)


async def count_selected(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, selection: BulkSelection, until: datetime
) -> int:
    """How many executions ``selection`` holds (every match, created before ``until``).

    Raises:
        NotFound: one of the ``ids`` is not an execution of this tenant.
    """
    if selection.ids is not None:
        found = {
            record["id"]
            for record in await connection.fetch(
                "SELECT id FROM executions WHERE tenant_id = $1 AND id = ANY($2::uuid[])", tenant_id, selection.ids
            )
        }
        if missing := [execution_id for execution_id in selection.ids if execution_id not in found]:
            raise NotFound(f"execution {missing[0]} does not exist")
        return len(found)
    assert selection.filter is not None
    filters = await resolve_search(connection, tenant_id, _created_before(selection.filter, until))
    query, arguments = count_executions_query(tenant_id, filters, cap=None)
    count: int = await connection.fetchval(query, *arguments)
    return count


async def next_selected(
    connection: asyncpg.Connection,
    tenant_id: uuid.UUID,
    selection: BulkSelection,
    until: datetime,
    *,
    after: uuid.UUID | None,
    limit: int,
) -> list[uuid.UUID]:
    """The next ``limit`` ids of ``selection`` after ``after``, in id order (the order an operation works in)."""
    if selection.ids is not None:
        remaining = sorted(execution_id for execution_id in set(selection.ids) if after is None or execution_id > after)
        return remaining[:limit]
    assert selection.filter is not None
    filters = await resolve_search(connection, tenant_id, _created_before(selection.filter, until))
    query, arguments = matching_ids_query(tenant_id, filters, after=after, limit=limit)
    return [record["id"] for record in await connection.fetch(query, *arguments)]


async def create_bulk_operation(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    kind: BulkKind,
    selection: BulkSelection,
    note: str | None,
    dry_run: bool,
    created_by: str | None,
    total: int | None = None,
) -> asyncpg.Record:
    """Store an operation with the number of executions it selects (or ``total``), in the caller's transaction.

    A dry run is stored completed: it only counts. Any other operation is pending until the scheduler takes it.

    Raises:
        NotFound: one of the ``ids`` is not an execution of this tenant.
    """
    now: datetime = await connection.fetchval("SELECT now()")
    if total is None:
        total = await count_selected(connection, tenant_id, selection, now)
    record: asyncpg.Record = await connection.fetchrow(
        """
        INSERT INTO bulk_operations (id, tenant_id, kind, selection, note, dry_run, status, total, created_at,
            completed_at, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN 'completed' ELSE 'pending' END, $7, $8::timestamptz,
            CASE WHEN $6 THEN $8::timestamptz END, $9)
        RETURNING *
        """,
        uuid7(),
        tenant_id,
        kind,
        msgspec.to_builtins(selection),
        note,
        dry_run,
        total,
        now,
        created_by,
    )
    return record


async def read_bulk_operation(
    connection: asyncpg.Connection | asyncpg.Pool,
    tenant_id: uuid.UUID,
    operation_id: uuid.UUID,
    *,
    visible_to: str | None,
) -> asyncpg.Record:
    """One operation of this tenant, created by ``visible_to`` unless that is None (an admin, who sees all).

    Raises:
        NotFound: no such operation in this tenant, or another principal's (both look the same).
    """
    record: asyncpg.Record | None = await connection.fetchrow(
        "SELECT * FROM bulk_operations WHERE id = $1 AND tenant_id = $2 "
        "AND ($3::text IS NULL OR created_by IS NOT DISTINCT FROM $3)",
        operation_id,
        tenant_id,
        visible_to,
    )
    if record is None:
        raise NotFound(f"bulk operation {operation_id} does not exist")
    return record


class BulkOperationRow(msgspec.Struct, frozen=True, kw_only=True):
    """A bulk operation as the scheduler works through it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: BulkKind
    selection: Any  # as stored: see ``selection_of``
    note: str | None
    created_by: str | None
    dry_run: bool
    status: str
    total: int
    succeeded: int
    failed: int
    skipped: int
    errors: list[dict[str, str | None]]
    last_execution_id: uuid.UUID | None
    last_scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


_ROW_COLUMNS = ", ".join(BulkOperationRow.__struct_fields__)


def selection_of(operation: BulkOperationRow) -> BulkSelection:
    """The selection stored with an operation.

    Raises:
        msgspec.ValidationError: it was stored by an incompatible version.
    """
    return msgspec.convert(operation.selection, BulkSelection)


class OperationCursor(NamedTuple):
    """Where a round over the unfinished operations has got to: the last one handled, in creation order."""

    created_at: datetime
    id: uuid.UUID


async def claim_bulk_operation(
    connection: asyncpg.Connection, *, after: OperationCursor | None, resting: list[uuid.UUID]
) -> BulkOperationRow | None:
    """Lock the oldest unfinished operation after ``after`` that no other scheduler holds and is not ``resting``.

    It stays locked until the transaction ends.
    """
    operations = typed(
        await connection.fetch(
            *bind(
                f"SELECT {_ROW_COLUMNS} FROM bulk_operations WHERE status IN ('pending', 'running') "
                "AND (:after_created_at::timestamptz IS NULL "
                "OR (created_at, id) > (:after_created_at, :after_id::uuid)) "
                "AND NOT (id = ANY(:resting::uuid[])) "
                "ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                after_created_at=after.created_at if after else None,
                after_id=after.id if after else None,
                resting=resting,
            )
        ),
        BulkOperationRow,
    )
    return operations[0] if operations else None


class BatchOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one batch of an operation did, to add to its row."""

    succeeded: int
    failed: int
    skipped: int
    errors: list[dict[str, str | None]]
    last_execution_id: uuid.UUID | None = None  # the cursor of an operation over executions
    last_scheduled_for: datetime | None = None  # the cursor of a backfill


async def record_bulk_batch(
    connection: asyncpg.Connection, operation_id: uuid.UUID, outcome: BatchOutcome, *, finished: bool, status: str
) -> BulkOperationRow:
    """Add a batch's counts and errors to its operation and move its cursors; a finished one takes ``status``."""
    rows = typed(
        await connection.fetch(
            *bind(
                f"""
                UPDATE bulk_operations SET
                    status = CASE WHEN :finished THEN :status ELSE 'running' END,
                    succeeded = succeeded + :succeeded, failed = failed + :failed, skipped = skipped + :skipped,
                    errors = errors || :errors::jsonb,
                    last_execution_id = coalesce(:last_execution_id, last_execution_id),
                    last_scheduled_for = coalesce(:last_scheduled_for, last_scheduled_for),
                    started_at = coalesce(started_at, now()),
                    completed_at = CASE WHEN :finished THEN now() END,
                    -- Once done, the total is what was handled, so that the counts add up: an execution that
                    -- stopped matching the filter before its batch came is left out, one that started matching is in.
                    total = CASE WHEN :finished THEN succeeded + :succeeded + failed + :failed + skipped + :skipped
                        ELSE total END
                WHERE id = :id
                RETURNING {_ROW_COLUMNS}
                """,
                msgspec.structs.asdict(outcome),
                id=operation_id,
                finished=finished,
                status=status,
            )
        ),
        BulkOperationRow,
    )
    return rows[0]
