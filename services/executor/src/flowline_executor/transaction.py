"""Running a state change in one transaction: grouped with others, ahead of its lock, or alone; then published."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from flowline.kafka.consumer import MessageRefused
from flowline.kafka.outbox import OutboxPublisher, OutboxRow
from flowline.runtime.outages import is_outage
from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES

from flowline_executor.change import Change, NeedsLock, lock_execution
from flowline_executor.executor import Executor
from flowline_executor.failures import failure
from flowline_executor.finishing import finish_execution
from flowline_executor.group_commit import GroupCommit, GroupFailed
from flowline_executor.metrics import ExecutorMetrics

logger = logging.getLogger(__name__)

Apply = Callable[[Change], Awaitable[None]]

# An execution's milestones are logged (with the request id that caused them); steps are left to task logs.
_LOGGED_EVENTS = frozenset(
    {"WORKFLOW_STARTED", "WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "WORKFLOW_SUSPENDED"}
)


class Transactions:
    """Runs state changes, each in one transaction, and publishes what they enqueued once they committed."""

    def __init__(
        self,
        executor: Executor,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        metrics: ExecutorMetrics,
        group_commit: GroupCommit,
        launch: Callable[[Change], None],
    ) -> None:
        self._executor = executor
        self._launch = launch  # starts the attempts a committed change claimed (``Change.eager``)
        self._pool = pool
        self._outbox = outbox
        self._metrics = metrics
        self._group_commit = group_commit

    async def run(
        self,
        tenant_id: uuid.UUID,
        execution_id: uuid.UUID,
        apply: Apply,
        *,
        fail_on_error: bool = True,
        ahead: Apply | None = None,
    ) -> None:
        """Make one state change in one transaction, start the attempts it claimed, and publish it.

        With ``fail_on_error``, an error that is not an outage (a bug, data PostgreSQL refuses) fails the
        execution in a transaction of its own instead of leaving it stuck behind a dead-lettered message.
        ``ahead`` works out a new execution's start before it is locked (``Change.write_new``); when that
        needs the database, or the execution changed meanwhile, ``apply`` works it out locked.
        """
        change = Change(self._executor, tenant_id, execution_id)
        try:
            rows = await self._write_ahead(change, ahead) if ahead is not None else None
            if rows is None:
                if ahead is not None:  # it needs the lock: work it out anew, locked
                    await self._executor.slots.release(change.reserved)
                    change = Change(self._executor, tenant_id, execution_id)
                try:
                    rows = await self._group_commit.run(execution_id, _writing(change, apply))
                except GroupFailed:  # another change of the group failed, or this one: find out alone
                    await self._executor.slots.release(change.reserved)
                    change = Change(self._executor, tenant_id, execution_id)
                    async with self._pool.acquire() as connection, connection.transaction():
                        rows = await _writing(change, apply)(connection)
        except BaseException as err:
            await self._executor.slots.release(change.reserved)
            # A refused message (another tenant's execution) changed nothing: it is dead-lettered, not failed.
            if not fail_on_error or not isinstance(err, Exception) or is_outage(err) or isinstance(err, MessageRefused):
                raise
            logger.exception("execution %s fails: its state change raised", execution_id)
            await self._fail_on_error(tenant_id, execution_id, err)
            return
        change.committed = True
        for event in change.events:
            if event.event in _LOGGED_EVENTS:
                logger.info("execution %s: %s", execution_id, event.event, extra={"execution_id": str(execution_id)})
        self._metrics.record(change.outcomes)
        self._launch(change)
        if change.cancelled_steps:
            self._executor.slots.stop(set(change.cancelled_steps))
        await self._outbox.publish(rows)

    async def _write_ahead(self, change: Change, ahead: Apply) -> list[OutboxRow] | None:
        """Work a new execution's start out ahead of its lock and write it: its outbox rows, or None if it was not.

        Worked out before it joins a group, the start holds no connection meanwhile, and it is one statement.
        """
        try:
            await ahead(change)
        except NeedsLock:
            return None
        try:
            return await self._group_commit.run(change.execution_id, change.write_new, statement=True)
        except GroupFailed:
            return None

    async def _fail_on_error(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, err: Exception) -> None:
        async def fail(change: Change) -> None:
            execution = await lock_execution(change, execution_id)
            if execution.status not in TERMINAL_EXECUTION_STATUSES:
                error = failure(f"internal error: {type(err).__name__}: {err}"[:2000], type="InternalError")
                await finish_execution(change, execution, "failed", error=error)

        await self.run(tenant_id, execution_id, fail, fail_on_error=False)


def _writing(change: Change, apply: Apply) -> Callable[[asyncpg.Connection], Awaitable[list[OutboxRow]]]:
    """The work of ``change`` in a transaction's connection: ``apply`` it, then write it."""

    async def write(connection: asyncpg.Connection) -> list[OutboxRow]:
        change.connection = connection
        await apply(change)
        return await change.write()

    return write
