"""Execution commands as state changes: the one implementation behind the api's routes and bulk operations.

Each function runs inside the caller's transaction (rows, event log and outbox together, docs/architecture.md §4.2) and
returns the outbox rows to publish after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES

from flowline.db.events import NewEvent, append_events
from flowline.db.sql import bind
from flowline.db.steps import list_step_statuses
from flowline.db.workflows import read_execution_input_schema
from flowline.domain.jsonschemas import check_instance
from flowline.domain.snapshots import WorkflowSnapshot
from flowline.errors import Conflict, NotFound
from flowline.kafka.outbox import OutboxRow, outgoing
from flowline.messages import CancelExecution, ExecutionRequested
from flowline.settings import Topics


async def lock_execution(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> asyncpg.Record:
    """The execution's status, error, start and last event sequence, locked until the transaction ends.

    Raises:
        NotFound: no such execution in this tenant.
    """
    execution: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, status, error, started_at, last_event_sequence FROM executions "
        "WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        execution_id,
        tenant_id,
    )
    if execution is None:
        raise NotFound(f"execution {execution_id} does not exist")
    return execution


async def write_command(
    connection: asyncpg.Connection,
    topics: Topics,
    execution: asyncpg.Record,
    tenant_id: uuid.UUID,
    events: Sequence[NewEvent],
    outbox: Sequence[OutboxRow],
) -> list[OutboxRow]:
    """Append a command's events and enqueue its messages for a locked execution."""
    return await append_events(
        connection,
        tenant_id=tenant_id,
        execution_id=execution["id"],
        after_sequence=execution["last_event_sequence"],
        events=events,
        topic=topics.events,
        outbox=outbox,
    )


async def request_cancel(
    connection: asyncpg.Connection,
    topics: Topics,
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    reason: str | None,
    requested_by: str,
) -> list[OutboxRow]:
    """Record who asked to cancel a pending, running or paused execution and tell the engine.

    Raises:
        NotFound: no such execution in this tenant.
        Conflict: the execution has already finished.
    """
    execution = await lock_execution(connection, tenant_id, execution_id)
    if execution["status"] in TERMINAL_EXECUTION_STATUSES:
        raise Conflict(f"execution {execution_id} is already {execution['status']}")
    await connection.execute(
        "UPDATE executions SET cancelled_at = coalesce(cancelled_at, now()), "
        "cancelled_by = coalesce(cancelled_by, $2) WHERE id = $1",
        execution_id,
        requested_by,
    )
    message = CancelExecution(tenant_id=tenant_id, execution_id=execution_id, reason=reason, requested_by=requested_by)
    return await write_command(connection, topics, execution, tenant_id, [], [outgoing(topics.control, message)])


# The steps a retry runs again: those that did not finish well, and those that never ran. Completed and skipped
# steps keep their output (and their status).
RETRIED_STATUSES = frozenset({"failed", "cancelled", "pending"})


async def _lock_retriable(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, execution_id: uuid.UUID, execution_input: Any
) -> asyncpg.Record:
    """Lock a failed execution to retry, checking the new input (if any) against its version's input schema.

    Raises:
        NotFound: no such execution in this tenant.
        Conflict: the execution has not failed.
        ValidationFailed: the new input does not match the input schema (the pointer names the field).
    """
    execution = await lock_execution(connection, tenant_id, execution_id)
    if execution["status"] != "failed":
        raise Conflict(f"execution {execution_id} is {execution['status']}; only a failed one is retried")
    if execution_input is not None and (schema := await read_execution_input_schema(connection, execution_id)):
        check_instance(schema, execution_input, "/input")
    return execution


async def preview_retry(
    connection: asyncpg.Connection, *, tenant_id: uuid.UUID, execution_id: uuid.UUID, execution_input: Any = None
) -> tuple[list[str], list[str]]:
    """The steps a retry would run again and those that keep their output, in definition order; changes nothing.

    Raises:
        NotFound, Conflict, ValidationFailed: as ``request_retry``.
    """
    await _lock_retriable(connection, tenant_id, execution_id, execution_input)
    steps = await list_step_statuses(connection, execution_id)
    again = [step.step_id for step in steps if step.status in RETRIED_STATUSES]
    return again, [step.step_id for step in steps if step.status not in RETRIED_STATUSES]


async def request_retry(
    connection: asyncpg.Connection,
    topics: Topics,
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    note: str | None,
    execution_input: Any = None,
) -> list[OutboxRow]:
    """Make a failed execution pending again (RETRY_REQUESTED); the engine resumes it from its failed steps.

    With ``execution_input``, the execution's input is replaced: the steps run again render their templates
    from it (the completed steps keep what they made of the old one).

    Raises:
        NotFound: no such execution in this tenant.
        Conflict: the execution has not failed.
        ValidationFailed: the new input does not match the execution's input schema.
    """
    execution = await _lock_retriable(connection, tenant_id, execution_id, execution_input)
    await connection.execute(
        *bind(
            "UPDATE executions SET status = 'pending', error = NULL, completed_at = NULL, "
            "input = coalesce(:input::jsonb, input) WHERE id = :execution_id",
            execution_id=execution_id,
            input=execution_input,
        )
    )
    event = NewEvent("RETRY_REQUESTED", WorkflowSnapshot(status="pending", note=note, error=execution["error"]))
    message = outgoing(topics.requests, ExecutionRequested(tenant_id=tenant_id, execution_id=execution_id))
    return await write_command(connection, topics, execution, tenant_id, [event], [message])
