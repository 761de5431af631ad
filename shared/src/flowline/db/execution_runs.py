"""Executions as the engine runs them: those whose start, report or cancellation went missing, to send again."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from flowline.db.sql import typed
from flowline.messages import AdvanceExecution, CancelExecution, ChildExecutionFinished, ExecutionRequested


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
