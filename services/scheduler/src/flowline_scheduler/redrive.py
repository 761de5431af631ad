"""Re-sends what a waiting execution needs when its message may have been lost.

PostgreSQL is the truth (docs/architecture.md §4.1, §4.9): if the broker loses its data, or a message was
dead-lettered, the rows still say what is waiting. Every handler is idempotent, so a message sent again
to an execution that did not need it changes nothing.
"""

from __future__ import annotations

from typing import TypedDict

import asyncpg
from flowline.db.execution_runs import (
    list_idle_executions,
    list_orphaned_children,
    list_unreported_children,
    list_unstarted_executions,
)
from flowline.db.promises import list_unapplied_promises
from flowline.db.steps import list_undispatched_steps
from flowline.db.timers import list_unapplied_timers
from flowline.kafka.inbox import forget_processed_messages
from flowline.kafka.outbox import OutboxPublisher, enqueue, outgoing
from flowline.runtime.loops import LoopService
from flowline.settings import Topics

BATCH = 500
# Inbox rows forgotten per statement: short deletes that never hold the table for long.
INBOX_BATCH = 5000


class Stalled(TypedDict):
    """What every stalled-work query takes: how long work may wait before it is stalled, and a batch size."""

    older_than: float
    limit: int


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
        stalled = Stalled(older_than=self._after_seconds, limit=BATCH)
        requests, tasks, control = self._topics.requests, self._topics.tasks, self._topics.control
        async with self._pool.acquire() as connection, connection.transaction():
            rows = [
                *[outgoing(requests, e.requested()) for e in await list_unstarted_executions(connection, **stalled)],
                *[outgoing(tasks, s.dispatched()) for s in await list_undispatched_steps(connection, **stalled)],
                *[outgoing(control, t.fired()) for t in await list_unapplied_timers(connection, **stalled)],
                *[outgoing(control, p.settled()) for p in await list_unapplied_promises(connection, **stalled)],
                *[outgoing(control, c.finished()) for c in await list_unreported_children(connection, **stalled)],
                *[outgoing(control, e.advance()) for e in await list_idle_executions(connection, **stalled)],
                *[outgoing(control, c.cancel()) for c in await list_orphaned_children(connection, **stalled)],
            ]
            await enqueue(connection, rows)
        await self._outbox.publish(rows)


class InboxRetention(LoopService):
    """Forgets processed message ids after the retention period, so the inbox stays small."""

    def __init__(self, pool: asyncpg.Pool, *, retention_seconds: float, interval_seconds: float) -> None:
        super().__init__("inbox-retention", interval_seconds)
        self._pool = pool
        self._retention_seconds = retention_seconds

    async def run_once(self) -> None:
        """Delete expired inbox rows in batches."""
        while (
            await forget_processed_messages(self._pool, older_than_seconds=self._retention_seconds, limit=INBOX_BATCH)
            == INBOX_BATCH
        ):
            pass
