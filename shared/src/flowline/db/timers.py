"""Durable timers: created by the executor, fired by the scheduler, and the TimerFired a fired timer sends."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec

from flowline.db.sql import typed
from flowline.messages import TimerFired


class Timer(msgspec.Struct, frozen=True, kw_only=True):
    """A timer that fired, or fires now."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    execution_id: uuid.UUID
    step_execution_id: uuid.UUID | None
    kind: str

    def fired(self) -> TimerFired:
        """The message that tells the executor this timer came due."""
        return TimerFired(
            tenant_id=self.tenant_id,
            execution_id=self.execution_id,
            timer_id=self.id,
            kind=self.kind,
            step_execution_id=self.step_execution_id,
        )


class DueTimer(Timer, frozen=True, kw_only=True):
    """A timer fired now, and how late (seconds past its time)."""

    lateness: float


async def create_timer(
    connection: asyncpg.Connection,
    *,
    timer_id: uuid.UUID,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    step_execution_id: uuid.UUID | None,
    kind: str,
    fire_at: datetime,
) -> None:
    """Store a pending timer of an execution (of one of its steps, unless it is the execution's timeout)."""
    await connection.execute(
        "INSERT INTO timers (id, tenant_id, execution_id, step_execution_id, kind, fire_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        timer_id,
        tenant_id,
        execution_id,
        step_execution_id,
        kind,
        fire_at,
    )


async def cancel_step_timers(connection: asyncpg.Connection, step_execution_id: uuid.UUID) -> None:
    """Cancel the pending timers of a step that finished."""
    await connection.execute(
        "UPDATE timers SET status = 'cancelled' WHERE step_execution_id = $1 AND status = 'pending'",
        step_execution_id,
    )


async def fire_due_timers(connection: asyncpg.Connection, limit: int) -> list[DueTimer]:
    """Mark up to ``limit`` due timers fired (the earliest first), skipping those another transaction holds."""
    return typed(
        await connection.fetch(
            """
            UPDATE timers SET status = 'fired', fired_at = now()
            WHERE status = 'pending' AND fire_at <= now()  -- again: the due index finds the rows to update
            AND id IN (
                SELECT id FROM timers WHERE status = 'pending' AND fire_at <= now()
                ORDER BY fire_at LIMIT $1 FOR UPDATE SKIP LOCKED
            )
            RETURNING id, tenant_id, execution_id, step_execution_id, kind,
                extract(epoch FROM fired_at - fire_at)::float8 AS lateness
            """,
            limit,
        ),
        DueTimer,
    )


async def read_next_timer_due(connection: asyncpg.Connection | asyncpg.Pool) -> float | None:
    """Seconds until the earliest pending timer fires, by PostgreSQL's clock (negative: due); None: no timer."""
    due_in: float | None = await connection.fetchval(
        "SELECT extract(epoch FROM min(fire_at) - clock_timestamp())::float8 FROM timers WHERE status = 'pending'"
    )
    return due_in


async def list_unapplied_timers(connection: asyncpg.Connection, *, older_than: float, limit: int) -> list[Timer]:
    """Timers fired over ``older_than`` seconds ago whose execution or step still waits for them.

    Their TimerFired went missing. Fired timers are kept, so they are reached from the running executions
    (ix_executions_running), by execution.
    """
    return typed(
        await connection.fetch(
            """
            SELECT t.id, t.tenant_id, t.execution_id, t.step_execution_id, t.kind
            FROM executions e
            JOIN timers t ON t.execution_id = e.id
            LEFT JOIN step_executions s ON s.id = t.step_execution_id
            WHERE e.status = 'running' AND t.status = 'fired' AND t.fired_at < now() - make_interval(secs => $1)
              AND (
                  t.kind = 'execution_timeout'
                  OR (t.kind IN ('sleep', 'promise') AND s.status = 'running')
                  OR (t.kind = 'retry' AND s.step_type = 'workflow' AND s.status = 'scheduled')
              )
            LIMIT $2
            """,
            older_than,
            limit,
        ),
        Timer,
    )
