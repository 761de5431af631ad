"""Execution commands as state changes: the one implementation behind the api's routes and bulk operations.

Each function runs inside the caller's transaction (rows, event log and outbox together, docs/architecture.md §4.2) and
returns the outbox rows to publish after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES

from flowline.db.events import NewEvent, append_events
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


async def request_retry(
    connection: asyncpg.Connection,
    topics: Topics,
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    note: str | None,
) -> list[OutboxRow]:
    """Make a failed execution pending again (RETRY_REQUESTED); the engine resumes it from its failed steps.

    Raises:
        NotFound: no such execution in this tenant.
        Conflict: the execution has not failed.
    """
    execution = await lock_execution(connection, tenant_id, execution_id)
    if execution["status"] != "failed":
        raise Conflict(f"execution {execution_id} is {execution['status']}; only a failed one is retried")
    await connection.execute(
        "UPDATE executions SET status = 'pending', error = NULL, completed_at = NULL WHERE id = $1",
        execution_id,
    )
    event = NewEvent("RETRY_REQUESTED", WorkflowSnapshot(status="pending", note=note, error=execution["error"]))
    message = outgoing(topics.requests, ExecutionRequested(tenant_id=tenant_id, execution_id=execution_id))
    return await write_command(connection, topics, execution, tenant_id, [event], [message])
