"""The state change in progress: what one transaction of one execution emits, and the statement that writes it.

Every state change is one transaction (docs/architecture.md §4.2): rows, event log and outbox together,
published after the commit. Transactions lock the execution row before any of its step rows, so writers of one execution
serialise and never deadlock. The modules that make a change pass its ``Change`` along; it carries the
connection, this process (``Executor``) and everything the change will write with its last statement.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import asyncpg
from flowline.db import execution_runs
from flowline.db.attempts import NewAttempt
from flowline.db.changes import append_change, create_started_execution
from flowline.db.events import Appending, ExecutionEnd, NewEvent, appending, check_sequenced
from flowline.db.execution_runs import RunningExecution
from flowline.db.steps import StepRow
from flowline.domain.definitions import StepDefinition
from flowline.domain.task_log_limits import cut_record, split_batches
from flowline.kafka.consumer import MessageRefused
from flowline.kafka.outbox import OutboxRow, enqueue, outgoing
from flowline.messages import TaskDispatched, TaskLogBatch, TaskLogRecord
from flowline.runtime.ids import uuid7
from flowline_schemas.logs import LogLevel

from flowline_executor.executor import Executor
from flowline_executor.finishes import Finishes
from flowline_executor.metrics import Outcomes


class NeedsLock(Exception):
    """A change worked out ahead of the execution's lock needs the database: work it out again, locked."""


class _AheadOfLock:
    """Stands in for the connection while a new execution's start is worked out before it is locked.

    Such a start writes only rows of its own (see ``Change.write_new``); anything that would run a
    statement (a timer, a child, a workflow version not cached) raises ``NeedsLock`` instead.
    """

    def __getattr__(self, name: str) -> Any:
        raise NeedsLock(f"connection.{name}")


AHEAD_OF_LOCK = cast(asyncpg.Connection, _AheadOfLock())


class Change:
    """One state change of one execution: its connection, and what its transaction emits."""

    def __init__(self, executor: Executor, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> None:
        self.executor = executor
        self.connection: asyncpg.Connection = AHEAD_OF_LOCK  # the transaction's, once it has one
        self.tenant_id = tenant_id
        self.execution_id = execution_id
        self.worker = executor.worker
        self.events: list[NewEvent] = []
        self.outbox: list[OutboxRow] = []
        self.eager: list[tuple[TaskDispatched, StepDefinition, Any]] = []  # attempts claimed here, run on commit
        self.reserved = 0  # attempt slots taken for ``eager`` by this change, given back if it does not commit
        self.committed = False
        self.enqueued: list[OutboxRow] = []  # rows already in the outbox (a child's start): publish only
        self.last_sequence: int | None = None  # the execution's event sequence, read when it was locked
        self.logs: list[TaskLogRecord] = []
        self.cancelled_steps: list[uuid.UUID] = []  # their attempts running here stop after the commit
        self.outcomes = Outcomes()
        self.finishes = Finishes(tenant_id, execution_id, self.worker)  # results the next statement writes
        self.end: ExecutionEnd | None = None  # the execution's end, when ``write`` writes it
        self.started_at: datetime | None = None  # when this change started the execution, which ``write`` writes
        # A new execution's step rows, when the change starting it was worked out ahead of its lock: no
        # statement ran, and ``write_new`` inserts them as the change left them.
        self.creating: dict[str, StepRow] | None = None

    async def flush(self) -> None:
        """Write the pending attempt results now, before a statement that does not carry them."""
        await self.finishes.flush(self.connection, self.outcomes)

    def log(
        self,
        level: LogLevel,
        message: str,
        *,
        task_id: uuid.UUID,
        step_id: str,
        attempt: int,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Keep a task log record, its message cut to the limit; ``write`` sends the records in few messages."""
        record = TaskLogRecord(
            tenant_id=self.tenant_id,
            execution_id=self.execution_id,
            task_id=task_id,
            step_id=step_id,
            attempt=attempt,
            level=level,
            message=message,
            metadata=metadata or {},
        )
        self.logs.append(cut_record(record, self.executor.settings.task_log_message_max_bytes))

    def _queue_logs(self) -> None:
        # Several messages when the records are too many for one: the broker refuses a message over its limit.
        for records in split_batches(self.logs):
            batch = TaskLogBatch(tenant_id=self.tenant_id, execution_id=self.execution_id, records=records)
            self.outbox.append(outgoing(self.executor.topics.logs, batch))

    def _appending(self, after_sequence: int) -> Appending:
        """The CTEs that append this change's events with its outbox rows, its end and its start."""
        return appending(
            tenant_id=self.tenant_id,
            execution_id=self.execution_id,
            after_sequence=after_sequence,
            events=self.events,
            topic=self.executor.topics.events,
            outbox=self.outbox,
            end=self.end,
            started_at=self.started_at,
        )

    async def write(self) -> list[OutboxRow]:
        """Append the events and enqueue every outbox row; publish the returned rows after the commit.

        One statement appends the events, enqueues the outbox rows, writes the pending attempt results and, when
        the execution completed, its end.
        """
        self._queue_logs()
        if not self.events:  # nothing changed the execution (a duplicate, a late message): no counter to move
            await self.flush()
            await enqueue(self.connection, self.outbox)
            return [*self.outbox, *self.enqueued]
        if self.last_sequence is None:
            raise RuntimeError(f"execution {self.execution_id}: events written without locking the execution")
        append = self._appending(self.last_sequence)
        appended = await append_change(self.connection, self.finishes.carry(), append)
        check_sequenced(appended.sequenced, self.execution_id, self.last_sequence)
        Finishes.carried(appended.settled, self.outcomes)
        return [*append.rows, *self.enqueued]

    async def write_new(self, connection: asyncpg.Connection) -> list[OutboxRow] | None:
        """Write the start of a new execution worked out ahead of its lock (``creating``) in one statement.

        Its steps, the attempts it ran or started, events, outbox rows and the execution's new status apply
        only if the execution is as it was created: at its first event (every change appends one). Else
        nothing is written and None returned, for the change to be worked out again under the lock.
        """
        if self.creating is None or self.started_at is None or self.last_sequence is None:
            raise RuntimeError(f"execution {self.execution_id}: write_new writes only a start worked out ahead")
        self._queue_logs()
        steps = self.creating
        finished = self.finishes.take()
        by_id = {row.id: row for row in steps.values()}
        for attempt in finished:
            by_id[attempt.step_execution_id].input = attempt.input
        attempts = [
            NewAttempt(
                uuid7(),
                a.step_execution_id,
                a.generation,
                a.number,
                a.status,
                a.duration_ms,
                a.error,
                a.input,
                a.output,
            )
            for a in finished
        ]
        attempts += [  # started here, run once this commits
            NewAttempt(uuid7(), row.id, row.generation, row.attempts, "running", None, None, row.input, None)
            for row in steps.values()
            if row.status == "running"
        ]
        append = self._appending(self.last_sequence)
        written = await create_started_execution(
            connection, append, steps, attempts, worker=self.worker, lease_seconds=self.executor.settings.lease_seconds
        )
        if not written:
            return None
        self.outcomes.steps_finished.extend(
            (by_id[attempt.step_execution_id].step_type, attempt.step_status, 0.0)
            for attempt in finished
            if attempt.step_status != "scheduled"
        )
        return [*append.rows, *self.enqueued]


async def lock_execution(change: Change, execution_id: uuid.UUID) -> RunningExecution:
    """Lock the execution row (before any of its steps) and note its event sequence for ``change``.

    Raises:
        MessageRefused: the change's tenant has no such execution: the message that asks for the change names
            another tenant's (or none), and is dead-lettered having changed nothing.
    """
    execution = await execution_runs.lock_execution(change.connection, change.tenant_id, execution_id)
    if execution is None:
        raise refused(change.tenant_id, execution_id)
    change.last_sequence = execution.last_event_sequence
    return execution


def refused(tenant_id: uuid.UUID, execution_id: uuid.UUID) -> MessageRefused:
    """The refusal of a message that names an execution its tenant does not have."""
    return MessageRefused(f"tenant {tenant_id} has no execution {execution_id}")
