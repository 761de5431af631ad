"""Re-sends what a waiting execution needs when its message may have been lost.

PostgreSQL is the truth (DESIGN §3 invariant 1): if the broker loses its data, or a message was
dead-lettered, the rows still say what is waiting. Every handler is idempotent, so a message sent again
to an execution that did not need it changes nothing.
"""

from __future__ import annotations

import asyncpg
from flowline.kafka.outbox import OutboxPublisher, enqueue, outgoing
from flowline.loops import LoopService
from flowline.messages import (
    AdvanceExecution,
    CancelExecution,
    ChildExecutionFinished,
    ExecutionRequested,
    PromiseSettled,
    TaskDispatched,
    TimerFired,
)
from flowline.settings import Topics

BATCH = 500


class Redrive(LoopService):
    """Finds pending executions, scheduled steps, fired timers and settled promises that made no progress."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        *,
        after_seconds: float,
        interval_seconds: float,
    ) -> None:
        super().__init__("redrive", interval_seconds)
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._after_seconds = after_seconds

    async def run_once(self) -> None:
        """Re-send one batch of each kind of stalled work."""
        async with self._pool.acquire() as connection, connection.transaction():
            rows = [
                *[
                    outgoing(self._topics.requests, ExecutionRequested(tenant_id=r["tenant_id"], execution_id=r["id"]))
                    for r in await self._pending_executions(connection)
                ],
                *[
                    outgoing(
                        self._topics.tasks,
                        TaskDispatched(
                            tenant_id=r["tenant_id"],
                            execution_id=r["execution_id"],
                            step_execution_id=r["id"],
                            step_id=r["step_id"],
                            generation=r["generation"],
                            attempt=r["attempts"] + 1,
                        ),
                    )
                    for r in await self._undispatched_steps(connection)
                ],
                *[
                    outgoing(
                        self._topics.control,
                        TimerFired(
                            tenant_id=r["tenant_id"],
                            execution_id=r["execution_id"],
                            timer_id=r["id"],
                            kind=r["kind"],
                            step_execution_id=r["step_execution_id"],
                        ),
                    )
                    for r in await self._unapplied_timers(connection)
                ],
                *[
                    outgoing(
                        self._topics.control,
                        PromiseSettled(
                            tenant_id=r["tenant_id"],
                            execution_id=r["execution_id"],
                            promise_id=r["id"],
                            step_execution_id=r["step_execution_id"],
                        ),
                    )
                    for r in await self._unapplied_promises(connection)
                ],
                *[
                    outgoing(
                        self._topics.control,
                        ChildExecutionFinished(
                            tenant_id=r["tenant_id"], execution_id=r["parent_execution_id"], child_execution_id=r["id"]
                        ),
                    )
                    for r in await self._unreported_children(connection)
                ],
                *[
                    outgoing(self._topics.control, AdvanceExecution(tenant_id=r["tenant_id"], execution_id=r["id"]))
                    for r in await self._idle_executions(connection)
                ],
                *[
                    outgoing(
                        self._topics.control,
                        CancelExecution(
                            tenant_id=r["tenant_id"],
                            execution_id=r["id"],
                            reason=f"the parent execution {r['parent_status']}",
                            requested_by="parent",
                        ),
                    )
                    for r in await self._orphaned_children(connection)
                ],
            ]
            await enqueue(connection, rows)
        await self._outbox.publish(rows)

    async def _pending_executions(self, connection: asyncpg.Connection) -> list[asyncpg.Record]:
        records: list[asyncpg.Record] = await connection.fetch(
            "SELECT id, tenant_id FROM executions "
            "WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1) LIMIT $2",
            self._after_seconds,
            BATCH,
        )
        return records

    async def _undispatched_steps(self, connection: asyncpg.Connection) -> list[asyncpg.Record]:
        # Scheduled and not waiting on a retry timer: its TaskDispatched went missing if it is this old.
        records: list[asyncpg.Record] = await connection.fetch(
            """
            SELECT s.id, s.tenant_id, s.execution_id, s.step_id, s.generation, s.attempts
            FROM step_executions s
            JOIN executions e ON e.id = s.execution_id AND e.status = 'running'
            WHERE s.status = 'scheduled' AND s.step_type IN ('action', 'agent', 'http')
              AND s.scheduled_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (
                  SELECT 1 FROM timers t WHERE t.step_execution_id = s.id
                  AND (t.status = 'pending' OR t.fired_at >= now() - make_interval(secs => $1))
              )
            LIMIT $2
            """,
            self._after_seconds,
            BATCH,
        )
        return records

    async def _unapplied_timers(self, connection: asyncpg.Connection) -> list[asyncpg.Record]:
        # A fired timer whose execution or step still waits for it: the TimerFired went missing. Fired timers
        # are kept, so they are reached from the running executions (ix_executions_running), by execution.
        records: list[asyncpg.Record] = await connection.fetch(
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
            self._after_seconds,
            BATCH,
        )
        return records

    async def _unapplied_promises(self, connection: asyncpg.Connection) -> list[asyncpg.Record]:
        # A resolved or rejected promise whose wait step still waits: the PromiseSettled went missing. Settled
        # promises are kept, so they are reached from the running steps (ix_step_executions_lease). A promise
        # belongs to its step's execution; matching that too reaches it by its key (execution_id, name), as
        # promises have no index on step_execution_id.
        records: list[asyncpg.Record] = await connection.fetch(
            """
            SELECT p.id, p.tenant_id, p.execution_id, p.step_execution_id
            FROM step_executions s
            JOIN promises p ON p.execution_id = s.execution_id AND p.step_execution_id = s.id
            WHERE s.status = 'running'
              AND p.status IN ('resolved', 'rejected') AND p.settled_at < now() - make_interval(secs => $1)
            LIMIT $2
            """,
            self._after_seconds,
            BATCH,
        )
        return records

    async def _unreported_children(self, connection: asyncpg.Connection) -> list[asyncpg.Record]:
        # A finished child whose parent's workflow step still waits: the ChildExecutionFinished went missing.
        records: list[asyncpg.Record] = await connection.fetch(
            """
            SELECT c.id, c.tenant_id, c.parent_execution_id
            FROM executions c
            JOIN step_executions s ON s.execution_id = c.parent_execution_id AND s.step_id = c.parent_step_id
                AND s.status = 'running'
            WHERE c.parent_execution_id IS NOT NULL AND c.status IN ('completed', 'failed', 'cancelled')
              AND c.completed_at < now() - make_interval(secs => $1)
            LIMIT $2
            """,
            self._after_seconds,
            BATCH,
        )
        return records

    async def _idle_executions(self, connection: asyncpg.Connection) -> list[asyncpg.Record]:
        # Running, yet no step is scheduled or running and nothing happened for a while: look at it again.
        # Read through ix_executions_running: the running executions, not every execution ever run.
        records: list[asyncpg.Record] = await connection.fetch(
            """
            SELECT e.id, e.tenant_id FROM executions e
            WHERE e.status = 'running' AND e.updated_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (
                  SELECT 1 FROM step_executions s WHERE s.execution_id = e.id AND s.status IN ('scheduled', 'running')
              )
            LIMIT $2
            """,
            self._after_seconds,
            BATCH,
        )
        return records

    async def _orphaned_children(self, connection: asyncpg.Connection) -> list[asyncpg.Record]:
        # A child still active under a parent that failed or was cancelled: its cancellation went missing.
        # Read through ix_executions_active_children: the join's c.parent_execution_id = p.id rules out the NULLs.
        records: list[asyncpg.Record] = await connection.fetch(
            """
            SELECT c.id, c.tenant_id, p.status AS parent_status
            FROM executions c
            JOIN executions p ON p.id = c.parent_execution_id AND p.status IN ('failed', 'cancelled')
            WHERE c.status IN ('pending', 'running', 'paused')
              AND p.completed_at < now() - make_interval(secs => $1)
            LIMIT $2
            """,
            self._after_seconds,
            BATCH,
        )
        return records


class InboxRetention(LoopService):
    """Forgets processed message ids after the retention period, so the inbox stays small."""

    def __init__(self, pool: asyncpg.Pool, *, retention_seconds: float, interval_seconds: float) -> None:
        super().__init__("inbox-retention", interval_seconds)
        self._pool = pool
        self._retention_seconds = retention_seconds

    async def run_once(self) -> None:
        """Delete expired inbox rows in batches."""
        while await self._pool.fetchval(
            "WITH gone AS (DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1) "
            "AND ctid IN (SELECT ctid FROM inbox WHERE processed_at < now() - make_interval(secs => $1) LIMIT 5000) "
            "RETURNING 1) "
            "SELECT count(*) FROM gone",
            self._retention_seconds,
        ):
            pass
