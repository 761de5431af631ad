"""Executions as the engine runs them: locked for a change, started, restarted, and found stalled to send again."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from flowline.db.attempts import FINISHED_STEPS, Carrying, SettledStep, settled_steps
from flowline.db.sql import bind, typed
from flowline.db.steps import StepRow, inserting_steps, steps_params
from flowline.messages import AdvanceExecution, CancelExecution, ChildExecutionFinished, ExecutionRequested

# What the engine reads of an execution it locks: the fields of ``RunningExecution``.
EXECUTION_COLUMNS = (
    "id, tenant_id, status, input, workflow_ref, workflow_version, workflow_version_id, parent_execution_id, "
    "parent_step_id, root_execution_id, last_event_sequence, started_at, rerun_of, rerun_from_step, owned_by, "
    "scheduled_for"
)
# Locks the execution and, when it is new and of the requested version, inserts its steps: the usual start
# under the lock in one statement. The row comes back as it was when locked, with ``started``; no row comes back
# when the execution is not the tenant's.
_LOCK_AND_INSERT_STEPS = f"""
    WITH execution AS (
        SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = :execution_id AND tenant_id = :tenant_id FOR UPDATE
    ), new AS (
        SELECT id FROM execution WHERE status = 'pending' AND started_at IS NULL AND rerun_of IS NULL
            AND workflow_version_id = :workflow_version_id
    ), {inserting_steps("EXISTS (SELECT FROM new)")}
    SELECT *, EXISTS (SELECT FROM new) AS started, clock_timestamp() AS starting_at FROM execution
    """
# Stores the steps of an execution that starts otherwise (an older request, a rerun) and marks it running.
_INSERT_STEPS_AND_RUN = f"""
    WITH {inserting_steps()}
    UPDATE executions SET status = 'running', started_at = clock_timestamp() WHERE id = :execution_id
    """
# A retried execution runs again from its failed and cancelled steps, each in a new generation.
_RESTART = """
    WITH reset AS (
        UPDATE step_executions SET status = 'pending', generation = generation + 1, attempts = 0,
            output = NULL, error = NULL, owner = NULL, lease_expires_at = NULL, scheduled_at = NULL,
            started_at = NULL, completed_at = NULL
        WHERE execution_id = $1 AND status IN ('failed', 'cancelled')
        RETURNING id
    ), forgotten AS (  -- a reset wait step creates its promise anew
        DELETE FROM promises WHERE execution_id = $1 AND step_execution_id IN (SELECT id FROM reset)
    )
    UPDATE executions SET status = 'running', completed_at = NULL WHERE id = $1
    """


# The execution ends, failed or cancelled, and its pending timers with it: they return for the events. A
# change's pending attempt results may come along (``FINISHING_ATTEMPTS``): they touch neither. See ``end_execution``.
_ENDING_EXECUTION = (
    "finished AS (UPDATE executions SET status = :status, output = :output, error = :error, "
    "completed_at = clock_timestamp() WHERE id = :execution_id), "
    "cancelled AS (UPDATE timers t SET status = 'cancelled' "
    "WHERE t.execution_id = :execution_id AND t.status = 'pending' "
    "RETURNING t.id, t.kind, t.step_execution_id AS task_id, "
    "(SELECT step_id FROM step_executions s WHERE s.id = t.step_execution_id)) "
    "SELECT id, kind, task_id, step_id, NULL AS step_type, NULL AS step_status, NULL::float8 AS seconds "
    "FROM cancelled"
)


class RunningExecution(msgspec.Struct, frozen=True, kw_only=True):
    """An execution as a state change of the engine sees it, once locked (or as its request carried it)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    status: str
    input: Any
    workflow_ref: str
    workflow_version: int
    workflow_version_id: uuid.UUID
    parent_execution_id: uuid.UUID | None
    parent_step_id: str | None
    root_execution_id: uuid.UUID
    last_event_sequence: int
    started_at: datetime | None
    rerun_of: uuid.UUID | None
    rerun_from_step: str | None
    owned_by: str | None
    scheduled_for: datetime | None = None


class LockedForStart(NamedTuple):
    """An execution locked by ``lock_and_insert_steps``, and whether that statement started it (and when)."""

    execution: RunningExecution
    started: bool
    starting_at: datetime


class ChildOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a child execution ended, and the step of its parent it ran for."""

    status: str
    output: Any
    error: dict[str, Any] | None
    parent_step_id: str


async def lock_execution(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> RunningExecution | None:
    """Lock the execution row (before any of its steps: the lock order of every writer); None if not the tenant's."""
    record = await connection.fetchrow(
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        execution_id,
        tenant_id,
    )
    return None if record is None else RunningExecution(**record)


async def lock_and_insert_steps(
    connection: asyncpg.Connection,
    *,
    execution_id: uuid.UUID,
    tenant_id: uuid.UUID,
    workflow_version_id: uuid.UUID,
    worker: str,
    lease_seconds: float,
    steps: dict[str, StepRow],
) -> LockedForStart | None:
    """Lock the execution and, when it is new and of ``workflow_version_id``, insert ``steps`` (one statement)."""
    record = await connection.fetchrow(
        *bind(
            _LOCK_AND_INSERT_STEPS,
            steps_params(steps),
            execution_id=execution_id,
            tenant_id=tenant_id,
            workflow_version_id=workflow_version_id,
            worker=worker,
            lease_seconds=lease_seconds,
        )
    )
    if record is None:
        return None
    columns = dict(record)
    started, starting_at = columns.pop("started"), columns.pop("starting_at")
    return LockedForStart(RunningExecution(**columns), started, starting_at)


async def insert_steps_and_run(
    connection: asyncpg.Connection,
    execution: RunningExecution,
    *,
    worker: str,
    lease_seconds: float,
    steps: dict[str, StepRow],
) -> None:
    """Insert the steps of an execution that starts otherwise than the usual way, and mark it running."""
    await connection.execute(
        *bind(
            _INSERT_STEPS_AND_RUN,
            steps_params(steps),
            execution_id=execution.id,
            tenant_id=execution.tenant_id,
            worker=worker,
            lease_seconds=lease_seconds,
        )
    )


async def restart_execution(connection: asyncpg.Connection, execution_id: uuid.UUID) -> None:
    """Mark a retried execution running again, its failed and cancelled steps pending in a new generation."""
    await connection.execute(_RESTART, execution_id)


async def mark_cancelled(connection: asyncpg.Connection, execution_id: uuid.UUID, requested_by: str | None) -> None:
    """Note when and by whom an execution was cancelled (the first cancellation counts)."""
    await connection.execute(
        "UPDATE executions SET cancelled_at = coalesce(cancelled_at, clock_timestamp()), "
        "cancelled_by = coalesce(cancelled_by, $2) WHERE id = $1",
        execution_id,
        requested_by,
    )


async def count_ancestors(connection: asyncpg.Connection, execution_id: uuid.UUID) -> int:
    """How many executions an execution descends from (0 for one no workflow step started)."""
    # Each step up is a lookup by key (a join with the recursion's rows may be planned as a scan).
    depth: int = await connection.fetchval(
        "WITH RECURSIVE ancestors AS (SELECT parent_execution_id FROM executions WHERE id = $1 UNION ALL "
        "SELECT (SELECT e.parent_execution_id FROM executions e WHERE e.id = a.parent_execution_id) "
        "FROM ancestors a WHERE a.parent_execution_id IS NOT NULL) "
        "SELECT count(*) FROM ancestors",
        execution_id,
    )
    return depth


async def read_parent_id(connection: asyncpg.Connection, execution_id: uuid.UUID) -> uuid.UUID | None:
    """The execution whose workflow step started this one, if any."""
    parent_id: uuid.UUID | None = await connection.fetchval(
        "SELECT parent_execution_id FROM executions WHERE id = $1", execution_id
    )
    return parent_id


async def read_child_outcome(
    connection: asyncpg.Connection, parent_id: uuid.UUID, child_id: uuid.UUID
) -> ChildOutcome | None:
    """How the child ``child_id`` of ``parent_id`` stands, if it is one of its children."""
    record = await connection.fetchrow(
        "SELECT status, output, error, parent_step_id FROM executions WHERE id = $1 AND parent_execution_id = $2",
        child_id,
        parent_id,
    )
    return None if record is None else ChildOutcome(**record)


async def list_active_children(connection: asyncpg.Connection, execution_id: uuid.UUID) -> list[ExecutionKey]:
    """The children of an execution that have not ended."""
    return typed(
        await connection.fetch(
            "SELECT id, tenant_id FROM executions "
            "WHERE parent_execution_id = $1 AND status IN ('pending', 'running', 'paused')",
            execution_id,
        ),
        ExecutionKey,
    )


class ExecutionKey(msgspec.Struct, frozen=True, kw_only=True):
    """An execution, by what its messages are keyed by."""

    id: uuid.UUID
    tenant_id: uuid.UUID

    def requested(self) -> ExecutionRequested:
        """The message that asks the executor to start the execution (read from the database)."""
        return ExecutionRequested(tenant_id=self.tenant_id, execution_id=self.id)

    def advance(self) -> AdvanceExecution:
        """The message that asks the executor to look at the execution's steps again."""
        return AdvanceExecution(tenant_id=self.tenant_id, execution_id=self.id)


class FinishedChild(msgspec.Struct, frozen=True, kw_only=True):
    """A child execution that finished, under its parent."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    parent_execution_id: uuid.UUID

    def finished(self) -> ChildExecutionFinished:
        """The message that tells the parent its child finished."""
        return ChildExecutionFinished(
            tenant_id=self.tenant_id, execution_id=self.parent_execution_id, child_execution_id=self.id
        )


class OrphanedChild(msgspec.Struct, frozen=True, kw_only=True):
    """A child execution still active under a parent that failed or was cancelled."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    parent_status: str

    def cancel(self) -> CancelExecution:
        """The message that cancels the child, as its parent's end does."""
        return CancelExecution(
            tenant_id=self.tenant_id,
            execution_id=self.id,
            reason=f"the parent execution {self.parent_status}",
            requested_by="parent",
        )


async def list_unstarted_executions(
    connection: asyncpg.Connection, *, older_than: float, limit: int
) -> list[ExecutionKey]:
    """Executions created over ``older_than`` seconds ago and still pending: their request went missing."""
    return typed(
        await connection.fetch(
            "SELECT id, tenant_id FROM executions "
            "WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1) LIMIT $2",
            older_than,
            limit,
        ),
        ExecutionKey,
    )


async def list_unreported_children(
    connection: asyncpg.Connection, *, older_than: float, limit: int
) -> list[FinishedChild]:
    """Children finished over ``older_than`` seconds ago whose parent's workflow step still waits for them."""
    return typed(
        await connection.fetch(
            """
            SELECT c.id, c.tenant_id, c.parent_execution_id
            FROM executions c
            JOIN step_executions s ON s.execution_id = c.parent_execution_id AND s.step_id = c.parent_step_id
                AND s.status = 'running'
            WHERE c.parent_execution_id IS NOT NULL AND c.status IN ('completed', 'failed', 'cancelled')
              AND c.completed_at < now() - make_interval(secs => $1)
            LIMIT $2
            """,
            older_than,
            limit,
        ),
        FinishedChild,
    )


async def list_idle_executions(connection: asyncpg.Connection, *, older_than: float, limit: int) -> list[ExecutionKey]:
    """Running executions untouched for ``older_than`` seconds with no step scheduled or running.

    Read through ix_executions_running: the running executions, not every execution ever run.
    """
    return typed(
        await connection.fetch(
            """
            SELECT e.id, e.tenant_id FROM executions e
            WHERE e.status = 'running' AND e.updated_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (
                  SELECT 1 FROM step_executions s WHERE s.execution_id = e.id AND s.status IN ('scheduled', 'running')
              )
            LIMIT $2
            """,
            older_than,
            limit,
        ),
        ExecutionKey,
    )


async def list_orphaned_children(
    connection: asyncpg.Connection, *, older_than: float, limit: int
) -> list[OrphanedChild]:
    """Children still active under a parent that ended (failed or cancelled) over ``older_than`` seconds ago.

    Read through ix_executions_active_children: the join's c.parent_execution_id = p.id rules out the NULLs.
    """
    return typed(
        await connection.fetch(
            """
            SELECT c.id, c.tenant_id, p.status AS parent_status
            FROM executions c
            JOIN executions p ON p.id = c.parent_execution_id AND p.status IN ('failed', 'cancelled')
            WHERE c.status IN ('pending', 'running', 'paused')
              AND p.completed_at < now() - make_interval(secs => $1)
            LIMIT $2
            """,
            older_than,
            limit,
        ),
        OrphanedChild,
    )


async def read_execution_id_by_key(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, idempotency_key: str, *, started_by: str
) -> uuid.UUID | None:
    """The id of the tenant's execution started by ``started_by`` with this idempotency key, if there is one."""
    execution_id: uuid.UUID | None = await connection.fetchval(
        *bind(
            "SELECT id FROM executions WHERE tenant_id = :tenant_id AND idempotency_key = :idempotency_key "
            "AND started_by = :started_by",
            tenant_id=tenant_id,
            idempotency_key=idempotency_key,
            started_by=started_by,
        )
    )
    return execution_id


class CancelledTimer(msgspec.Struct, frozen=True, kw_only=True):
    """A pending timer cancelled because its execution ended."""

    id: uuid.UUID
    kind: str
    task_id: uuid.UUID | None
    step_id: str | None


class EndedExecution(NamedTuple):
    """What ending an execution stopped: its pending timers, and the steps its change's results settled."""

    cancelled_timers: list[CancelledTimer]
    settled: list[SettledStep]


async def end_execution(
    connection: asyncpg.Connection,
    carrying: Carrying,
    *,
    execution_id: uuid.UUID,
    status: str,
    output: Any,
    error: dict[str, Any] | None,
) -> EndedExecution:
    """End a failed or cancelled execution with ``status`` and cancel its pending timers, in one statement.

    The change's pending attempt results (``carrying``) go with it.
    """
    with_finished = f" UNION ALL SELECT NULL, NULL, NULL, NULL, * FROM ({FINISHED_STEPS}) AS f" if carrying.ctes else ""
    records = await connection.fetch(
        *bind(
            f"WITH {carrying.ctes} {_ENDING_EXECUTION}{with_finished}",
            carrying.params,
            execution_id=execution_id,
            status=status,
            output=output,
            error=error,
        )
    )
    timers = [
        CancelledTimer(id=record["id"], kind=record["kind"], task_id=record["task_id"], step_id=record["step_id"])
        for record in records
        if record["id"] is not None
    ]
    return EndedExecution(timers, settled_steps(records))
