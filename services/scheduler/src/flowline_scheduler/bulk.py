"""Bulk operations (cancel, retry, backfill): the scheduler works through unfinished ones, a batch per transaction."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from flowline.db.bulk_operations import (
    MAX_ERRORS,
    BatchOutcome,
    BulkOperationRow,
    OperationCursor,
    claim_bulk_operation,
    next_selected,
    record_bulk_batch,
    selection_of,
)
from flowline.db.notifications import BULK_OPERATIONS
from flowline.domain.commands import request_cancel, request_retry
from flowline.domain.removal import Remover
from flowline.domain.snapshots import OperationSnapshot
from flowline.errors import Conflict, FlowlineError, NotFound
from flowline.kafka.outbox import OutboxPublisher, OutboxRow, enqueue, outgoing
from flowline.messages import OperationEvent
from flowline.runtime.loops import LoopService
from flowline.runtime.outages import OUTAGE_ERRORS
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Topics

from flowline_scheduler.backfill import backfill_batch
from flowline_scheduler.metrics import SchedulerMetrics

logger = logging.getLogger(__name__)

BULK_BATCH = 100


class BulkOperationLoop(LoopService):
    """Applies bulk cancels, retries and deletes, in execution id order, a batch at a time.

    The scheduler polls for unfinished operations with ``FOR UPDATE SKIP LOCKED`` and holds the operation's
    row lock for one batch: the batch's per-execution commands, the counters and the resume cursor
    (``last_execution_id``) commit together. Replicas share the work, and a scheduler that dies mid-batch
    takes its uncommitted batch and its lock with it, so the next poll (of any replica) resumes at the cursor:
    no execution is handled twice and none is missed. Polling the table, rather than announcing operations on
    a topic, needs nothing re-sent after a crash or a broker loss: the row is the queue.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        interval_seconds: float,
        batch_size: int = BULK_BATCH,
        backfill_runs_per_second: float = 50.0,
        *,
        metrics: SchedulerMetrics | None = None,
        archive_dir: Path | None = None,
        wakeups: Wakeups | None = None,
    ) -> None:
        super().__init__(
            "bulk-operations", interval_seconds, wakeups=wakeups, channels=(BULK_OPERATIONS,) if wakeups else ()
        )
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._batch_size = batch_size
        self._metrics = metrics
        self._remover = Remover(archive_dir)
        self._backfill_runs_per_second = backfill_runs_per_second
        # A backfill batch is a second's worth of runs; the loop then waits out the rest of that second.
        self._backfill_batch = max(int(backfill_runs_per_second), 1)
        self._rest_until: dict[uuid.UUID, float] = {}  # backfill → when it may go on (``time.monotonic``)

    async def run_once(self) -> None:
        """Work through every unfinished operation until none is left, in rounds: a batch of each per round.

        So a long operation (a backfill at its bounded rate, a cancel of a million executions) holds up none
        that came after it. A backfill rests after each batch, for as long as its rate asks, while the others
        go on; when only resting ones are left, the loop waits for the first to be ready.
        """
        while True:
            handled, after = 0, None
            while (done := await self.run_batch(after)) is not None:
                handled, after = handled + 1, done
            if not handled:
                if not (resting := self._resting()):
                    return
                await asyncio.sleep(max(min(resting.values()) - time.monotonic(), 0.0))

    def _resting(self) -> dict[uuid.UUID, float]:
        """The backfills resting now (their rate), with when each may go on (``time.monotonic``)."""
        now = time.monotonic()
        self._rest_until = {operation: until for operation, until in self._rest_until.items() if until > now}
        return self._rest_until

    async def run_batch(self, after: OperationCursor | None = None) -> OperationCursor | None:
        """Handle the next batch of the oldest unfinished operation after ``after``, in this round.

        Operations another scheduler is working on, and resting backfills, are passed over.

        Returns:
            Where the round has got to (the operation handled), or None when no operation was left.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            operation = await claim_bulk_operation(connection, after=after, resting=list(self._resting()))
            if operation is None:
                return None
            if operation.kind == "backfill":
                rows, started = await self._backfill(connection, operation)
            else:
                rows, started = await self._work(connection, operation), 0
        await self._outbox.publish(rows)
        if started:  # bounded rate: the executors see a backfill's runs arrive steadily, not all at once
            self._rest_until[operation.id] = time.monotonic() + started / self._backfill_runs_per_second
        return OperationCursor(operation.created_at, operation.id)

    async def _backfill(
        self, connection: asyncpg.Connection, operation: BulkOperationRow
    ) -> tuple[list[OutboxRow], int]:
        """Start the next batch of a backfill's runs; its outbox rows and how many runs it started."""
        batch = await backfill_batch(connection, self._topics, operation, selection_of(operation), self._backfill_batch)
        outcome = BatchOutcome(
            succeeded=batch.succeeded,
            failed=batch.failed,
            skipped=batch.skipped,
            errors=batch.errors,
            last_scheduled_for=batch.last_scheduled_for,
        )
        rows = await self._record(connection, operation, outcome, finished=batch.finished)
        return batch.rows + rows, batch.succeeded

    async def _work(self, connection: asyncpg.Connection, operation: BulkOperationRow) -> list[OutboxRow]:
        """Apply the operation's command to its next batch of executions and record the outcome."""
        try:
            selection = selection_of(operation)
        except msgspec.ValidationError as err:  # stored by an incompatible version: there is nothing to select
            logger.error("bulk operation %s has an unreadable selection: %s", operation.id, err)
            error: dict[str, str | None] = {"executionId": None, "message": f"unreadable selection: {err}"}
            unreadable = BatchOutcome(succeeded=0, failed=0, skipped=0, errors=[error])
            return await self._record(connection, operation, unreadable, finished=True, status="failed")
        ids = await next_selected(
            connection,
            operation.tenant_id,
            selection,
            operation.created_at,
            after=operation.last_execution_id,
            limit=self._batch_size,
        )
        rows: list[OutboxRow] = []
        succeeded = failed = skipped = 0
        errors: list[dict[str, str | None]] = []
        for execution_id in ids:
            try:
                async with connection.transaction():  # a savepoint: a failed command leaves the batch intact
                    rows.extend(await self._apply(connection, operation, execution_id))
                succeeded += 1
            except OUTAGE_ERRORS:
                raise  # the whole batch rolls back and the next run does it again
            except Conflict:
                skipped += 1  # not in a state the command applies to, e.g. cancelling a finished execution
            except FlowlineError as err:
                failed += 1
                errors.append({"executionId": str(execution_id), "message": err.detail})
            except Exception as err:  # one poison execution must not stall the operation forever
                logger.exception(
                    "bulk operation %s: %s of execution %s failed", operation.id, operation.kind, execution_id
                )
                failed += 1
                errors.append({"executionId": str(execution_id), "message": f"unexpected error: {err}"})
        outcome = BatchOutcome(
            succeeded=succeeded,
            failed=failed,
            skipped=skipped,
            errors=errors,
            last_execution_id=ids[-1] if ids else None,
        )
        rows.extend(await self._record(connection, operation, outcome, finished=len(ids) < self._batch_size))
        return rows

    async def _apply(
        self, connection: asyncpg.Connection, operation: BulkOperationRow, execution_id: uuid.UUID
    ) -> list[OutboxRow]:
        """The same state change as the single-execution route (``domain.commands``, ``domain.removal``)."""
        if operation.kind == "delete":
            await self._delete(connection, operation.tenant_id, execution_id)
            return []
        if operation.kind == "cancel":
            return await request_cancel(
                connection,
                self._topics,
                tenant_id=operation.tenant_id,
                execution_id=execution_id,
                reason=operation.note,
                requested_by=f"bulk-operation:{operation.id}",
            )
        return await request_retry(
            connection,
            self._topics,
            tenant_id=operation.tenant_id,
            execution_id=execution_id,
            note=operation.note,
        )

    async def _delete(self, connection: asyncpg.Connection, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> None:
        """Remove a finished root execution whole, as ``DELETE /executions/{id}`` does.

        Raises:
            Conflict: it cannot be deleted (not finished, a child, a descendant running), or it is gone already
                (a child selected with its root goes with the root): it is skipped.
        """
        try:
            removal = await self._remover.delete_execution(connection, tenant_id, execution_id)
        except NotFound as err:
            raise Conflict(f"execution {execution_id} no longer exists") from err
        if self._metrics is not None:
            for table, count in removal.rows.items():
                self._metrics.retention_removed_rows.labels(table).inc(count)

    async def _record(
        self,
        connection: asyncpg.Connection,
        operation: BulkOperationRow,
        outcome: BatchOutcome,
        *,
        finished: bool,
        status: str = "completed",
    ) -> list[OutboxRow]:
        """Add the batch's outcome to the operation (its errors up to ``MAX_ERRORS`` in all) and move its cursor.

        A finished operation also gets its OPERATION_COMPLETED event, in the same transaction.
        """
        kept = msgspec.structs.replace(outcome, errors=outcome.errors[: max(MAX_ERRORS - len(operation.errors), 0)])
        updated = await record_bulk_batch(connection, operation.id, kept, finished=finished, status=status)
        if not finished:
            return []
        now = datetime.now(UTC)
        event = OperationEvent(
            tenant_id=operation.tenant_id,
            operation_id=operation.id,
            event="OPERATION_COMPLETED",
            data=_snapshot(updated),
            occurred_at=now,
            timestamp_ms=int(now.timestamp() * 1000),
        )
        return list(await enqueue(connection, [outgoing(self._topics.events, event)]))


def _snapshot(operation: BulkOperationRow) -> dict[str, Any]:
    snapshot = OperationSnapshot(
        id=str(operation.id),
        kind=operation.kind,
        status=operation.status,
        total=operation.total,
        succeeded=operation.succeeded,
        failed=operation.failed,
        skipped=operation.skipped,
    )
    data: dict[str, Any] = msgspec.to_builtins(snapshot)
    return data
