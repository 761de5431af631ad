"""The executor's engine: starts executions, advances their graphs and runs step attempts.

Every state change is one transaction (DESIGN §3): rows, event log and outbox together, published
after the commit. Transactions lock the execution row before any of its step rows, so writers of one
execution serialise and never deadlock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import msgspec
from flowline.actions import BUILTIN_ACTIONS, Action, ActionContext, ActionFailed
from flowline.agents import Agent, auth_cipher, load_agent, open_secret
from flowline.db.events import Appending, ExecutionEnd, NewEvent, appending, check_sequenced
from flowline.db.tenants import read_tenant_id
from flowline.definitions import (
    HttpRequest,
    RetryPolicy,
    StepDefinition,
    WorkflowDefinition,
    downstream,
    masked_request,
    parse_duration,
    request_secrets,
)
from flowline.errors import ClientError, FlowlineError
from flowline.executions import (
    CREATED_SEQUENCE,
    KAFKA_STARTED_BY,
    TERMINAL_EXECUTION_STATUSES,
    ParentStep,
    parent_started_by,
    start_execution,
)
from flowline.ids import uuid7
from flowline.kafka.inbox import claim_message
from flowline.kafka.outbox import OutboxPublisher, OutboxRow, enqueue, outgoing
from flowline.messages import (
    AdvanceExecution,
    CancelExecution,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ControlMessage,
    EventType,
    ExecutionRequested,
    LogLevel,
    PromiseSettled,
    RequestMessage,
    SubmissionRejected,
    SubmitExecution,
    TaskDispatched,
    TaskLogBatch,
    TaskLogRecord,
    TimerFired,
    TimerScheduled,
    encode,
)
from flowline.outages import OUTAGE_ERRORS
from flowline.outbound import OutboundPolicy
from flowline.request_ids import current_request_id
from flowline.settings import Settings, Topics
from flowline.snapshots import (
    ChildWorkflowSnapshot,
    PromiseSnapshot,
    TaskSnapshot,
    TimerSnapshot,
    WorkflowSnapshot,
)
from flowline.templating import TemplateError, render, render_condition

from flowline_executor import http_step
from flowline_executor.agent_step import call_agent, retry_policy
from flowline_executor.finishes import FINISHED_STEPS, FinishedAttempt, Finishes
from flowline_executor.graph import Graph
from flowline_executor.group_commit import GroupCommit, GroupFailed
from flowline_executor.metrics import ExecutorMetrics, Outcomes

logger = logging.getLogger(__name__)

# An execution's milestones are logged (with the request id that caused them); steps are left to task logs.
_LOGGED_EVENTS = frozenset(
    {"WORKFLOW_STARTED", "WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED", "WORKFLOW_SUSPENDED"}
)

# What the engine reads of an execution it locks.
EXECUTION_COLUMNS = (
    "id, tenant_id, status, input, workflow_ref, workflow_version, workflow_version_id, parent_execution_id, "
    "parent_step_id, root_execution_id, last_event_sequence, started_at, rerun_of, rerun_from_step, owned_by"
)
# A finished step's duration, from its start (NULL when it never started), for RETURNING clauses.
STEP_SECONDS = "extract(epoch FROM completed_at - started_at)::float8 AS seconds"
# How deep child workflows may nest (a workflow that starts itself stops here instead of forever).
MAX_CHILD_DEPTH = 20
FINISHED_EVENTS: dict[str, EventType] = {
    "completed": "WORKFLOW_COMPLETED",
    "failed": "WORKFLOW_FAILED",
    "cancelled": "WORKFLOW_CANCELLED",
}
# The names under which the ids of applied requests and control messages are kept (the inbox).
REQUESTS_CONSUMER = "executor"
CONTROL_CONSUMER = "executor-control"
# Timestamps use clock_timestamp(), not now(): now() is when the transaction began, and a transaction that
# waited for the execution's lock would otherwise record a step as started before its need completed.
LOG_LEVELS: dict[str, LogLevel] = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
}


class Changes:
    """What one transaction emits: events for the event log and other outbox rows."""

    def __init__(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, worker: str) -> None:
        self.tenant_id = tenant_id
        self.execution_id = execution_id
        self.worker = worker
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
        self.finishes = Finishes(tenant_id, execution_id, worker)  # results the next statement writes
        self.end: ExecutionEnd | None = None  # the execution's end, when ``write`` writes it
        self.started_at: datetime | None = None  # when this change started the execution, which ``write`` writes
        # A new execution's step rows, when the change starting it was worked out ahead of its lock: no
        # statement ran, and ``write_new`` inserts them as the change left them.
        self.creating: dict[str, dict[str, Any]] | None = None

    async def flush(self, connection: asyncpg.Connection) -> None:
        """Write the pending attempt results now, before a statement that does not carry them."""
        await self.finishes.flush(connection, self.outcomes)

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
        """Keep a task log record; ``write`` sends this change's records as one message."""
        self.logs.append(
            TaskLogRecord(
                tenant_id=self.tenant_id,
                execution_id=self.execution_id,
                task_id=task_id,
                step_id=step_id,
                attempt=attempt,
                level=level,
                message=message,
                metadata=metadata or {},
            )
        )

    def _queue_logs(self, topics: Topics) -> None:
        if self.logs:
            batch = TaskLogBatch(tenant_id=self.tenant_id, execution_id=self.execution_id, records=self.logs)
            self.outbox.append(outgoing(topics.logs, batch))

    def _appending(self, topics: Topics, after_sequence: int, *, first_parameter: int) -> Appending:
        """The CTEs that append this change's events with its outbox rows, its end and its start."""
        return appending(
            tenant_id=self.tenant_id,
            execution_id=self.execution_id,
            after_sequence=after_sequence,
            events=self.events,
            topic=topics.events,
            outbox=self.outbox,
            end=self.end,
            started_at=self.started_at,
            first_parameter=first_parameter,
        )

    async def write(self, connection: asyncpg.Connection, topics: Topics) -> list[OutboxRow]:
        """Append the events and enqueue every outbox row; publish the returned rows after the commit.

        One statement appends the events, enqueues the outbox rows, writes the pending attempt results and, when
        the execution completed, its end.
        """
        self._queue_logs(topics)
        if not self.events:  # nothing changed the execution (a duplicate, a late message): no counter to move
            await self.flush(connection)
            await enqueue(connection, self.outbox)
            return [*self.outbox, *self.enqueued]
        if self.last_sequence is None:
            raise RuntimeError(f"execution {self.execution_id}: events written without locking the execution")
        finishes, finish_args = self.finishes.carry(1)
        append = self._appending(topics, self.last_sequence, first_parameter=len(finish_args) + 1)
        with_finished = f", f.* FROM (SELECT) AS one LEFT JOIN ({FINISHED_STEPS}) AS f ON true" if finishes else ""
        written = await connection.fetch(
            f"WITH {finishes} {append.ctes} SELECT (SELECT count(*) FROM sequenced) AS sequenced{with_finished}",
            *finish_args,
            *append.args,
        )
        check_sequenced(written[0]["sequenced"], self.execution_id, self.last_sequence)
        if finishes:
            Finishes.carried(written, self.outcomes)
        return [*append.rows, *self.enqueued]

    async def write_new(
        self, connection: asyncpg.Connection, topics: Topics, lease_seconds: float
    ) -> list[OutboxRow] | None:
        """Write the start of a new execution worked out ahead of its lock (``creating``) in one statement.

        Its steps, the attempts it ran or started, events, outbox rows and the execution's new status apply
        only if the execution is as it was created: at its first event (every change appends one). Else
        nothing is written and None returned, for the change to be worked out again under the lock.
        """
        if self.creating is None or self.started_at is None or self.last_sequence is None:
            raise RuntimeError(f"execution {self.execution_id}: write_new writes only a start worked out ahead")
        self._queue_logs(topics)
        steps = self.creating
        finished = self.finishes.take()
        by_id = {row["id"]: row for row in steps.values()}
        for attempt in finished:
            by_id[attempt.step_execution_id]["input"] = attempt.input
        attempts: list[tuple[Any, ...]] = [
            (uuid7(), a.step_execution_id, a.generation, a.number, a.status, a.duration_ms, a.error) for a in finished
        ]
        attempts += [  # started here, run once this commits
            (uuid7(), row["id"], row["generation"], row["attempts"], "running", None, None)
            for row in steps.values()
            if row["status"] == "running"
        ]
        attempt_columns = [list(column) for column in zip(*attempts, strict=True)] if attempts else [[]] * 7
        append = self._appending(topics, self.last_sequence, first_parameter=21)
        # Timestamps as the locked path writes them: statement time for what happened in the change, and the
        # lease from the clock. A step that finished without running (skipped) has no start.
        written = await connection.fetchval(
            f"""
            WITH {append.ctes}, created AS (
                INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status, input,
                    output, error, attempts, owner, lease_expires_at, scheduled_at, started_at, completed_at)
                SELECT s.id, $1, $2, s.step_id, s.position, s.step_type, s.status, s.input, s.output, s.error,
                    s.attempts, CASE WHEN s.status = 'running' THEN $3 END,
                    CASE WHEN s.status = 'running' THEN clock_timestamp() + make_interval(secs => $4) END,
                    CASE WHEN s.status IN ('scheduled', 'running') OR s.attempts > 0 THEN statement_timestamp() END,
                    CASE WHEN s.status = 'running' OR s.attempts > 0 THEN statement_timestamp() END,
                    CASE WHEN s.status IN ('completed', 'failed', 'skipped') THEN statement_timestamp() END
                FROM unnest($5::uuid[], $6::text[], $7::int[], $8::text[], $9::text[], $10::jsonb[], $11::jsonb[],
                    $12::jsonb[], $13::int[]) AS s(id, step_id, position, step_type, status, input, output, error,
                    attempts)
                WHERE EXISTS (SELECT FROM sequenced)
            ), attempted AS (
                INSERT INTO task_attempts (id, tenant_id, step_execution_id, execution_id, generation, number, status,
                    worker, started_at, finished_at, duration_ms, error)
                SELECT a.id, $1, a.step_execution_id, $2, a.generation, a.number, a.status, $3, statement_timestamp(),
                    CASE WHEN a.status <> 'running' THEN statement_timestamp() END, a.duration_ms, a.error
                FROM unnest($14::uuid[], $15::uuid[], $16::int[], $17::int[], $18::text[], $19::int[], $20::jsonb[])
                    AS a(id, step_execution_id, generation, number, status, duration_ms, error)
                WHERE EXISTS (SELECT FROM sequenced)
            )
            SELECT count(*) FROM sequenced
            """,
            self.tenant_id,
            self.execution_id,
            self.worker,
            lease_seconds,
            [row["id"] for row in steps.values()],
            list(steps),
            list(range(len(steps))),
            [row["step_type"] for row in steps.values()],
            [row["status"] for row in steps.values()],
            [row["input"] for row in steps.values()],
            [row["output"] for row in steps.values()],
            [row["error"] for row in steps.values()],
            [row["attempts"] for row in steps.values()],
            *attempt_columns,
            *append.args,
        )
        if not written:
            return None
        self.outcomes.steps_finished.extend(
            (by_id[attempt.step_execution_id]["step_type"], attempt.step_status, 0.0)
            for attempt in finished
            if attempt.step_status != "scheduled"
        )
        return [*append.rows, *self.enqueued]


class AttemptLogger:
    """The logger an action gets: records are kept and written with the attempt's result."""

    def __init__(self) -> None:
        self.records: list[tuple[LogLevel, str, dict[str, Any]]] = []

    def log(self, level: str, message: str, **metadata: Any) -> None:
        """Keep one record for the attempt's result transaction."""
        self.records.append((LOG_LEVELS.get(level.upper(), "INFO"), message, metadata))


class Claimed(msgspec.Struct, frozen=True):
    """A step attempt this worker owns until it records the result."""

    message: TaskDispatched
    step: StepDefinition
    step_input: Any
    started: float


def _error(message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, **extra}


class NeedsLock(Exception):
    """A change worked out ahead of the execution's lock needs the database: work it out again, locked."""


class _AheadOfLock:
    """Stands in for the connection while a new execution's start is worked out before it is locked.

    Such a start writes only rows of its own (see ``Changes.write_new``); anything that would run a
    statement (a timer, a child, a workflow version not cached) raises ``NeedsLock`` instead.
    """

    def __getattr__(self, name: str) -> Any:
        raise NeedsLock(f"connection.{name}")


AHEAD_OF_LOCK = cast(asyncpg.Connection, _AheadOfLock())


class Engine:
    """Handles the executor's messages; one instance per process."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        actions: dict[str, Action],
        metrics: ExecutorMetrics,
        *,
        group_commit: GroupCommit | None = None,
    ) -> None:
        self._settings = settings
        self._topics = settings.topics
        self._pool = pool
        self._outbox = outbox
        self._actions = actions
        self._metrics = metrics
        self.worker = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid7().hex[-6:]}"
        self._graphs: dict[uuid.UUID, Graph] = {}
        self._capacity = settings.max_concurrent_tasks
        self._capacity_freed = asyncio.Condition()
        self._busy = 0  # attempts claimed by this process and not yet finished
        self._running: dict[asyncio.Task[None], uuid.UUID] = {}  # attempt task → its step execution
        self._group_commit = group_commit or GroupCommit(pool)
        self._http = http_step.create_client(OutboundPolicy.from_setting(settings.outbound_allowed_networks))
        self._cipher = auth_cipher(settings.secret_key)

    @property
    def running_attempts(self) -> int:
        """Attempts this process is running now."""
        return len(self._running)

    async def _change(
        self,
        tenant_id: uuid.UUID,
        execution_id: uuid.UUID,
        apply: Callable[[asyncpg.Connection, Changes], Awaitable[None]],
        *,
        fail_on_error: bool = True,
        ahead: Callable[[Changes], Awaitable[None]] | None = None,
    ) -> None:
        """One state change in one transaction; after the commit, run the attempts it claimed and publish.

        With ``fail_on_error``, an error that is not an outage (a bug, data PostgreSQL refuses) fails the
        execution in a transaction of its own instead of leaving it stuck behind a dead-lettered message.
        ``ahead`` works out a new execution's start before it is locked (``Changes.write_new``); when that
        needs the database, or the execution changed meanwhile, ``apply`` works it out locked.
        """
        changes = Changes(tenant_id, execution_id, self.worker)

        async def write(connection: asyncpg.Connection) -> list[OutboxRow]:
            await apply(connection, changes)
            return await changes.write(connection, self._topics)

        try:
            rows = await self._write_ahead(changes, ahead) if ahead is not None else None
            if rows is None:
                if ahead is not None:  # it needs the lock: work it out anew, locked
                    await self._release(changes.reserved)
                    changes = Changes(tenant_id, execution_id, self.worker)
                try:
                    rows = await self._group_commit.run(execution_id, write)
                except GroupFailed:  # another change of the group failed, or this one: find out alone
                    await self._release(changes.reserved)
                    changes = Changes(tenant_id, execution_id, self.worker)
                    async with self._pool.acquire() as connection, connection.transaction():
                        rows = await write(connection)
        except BaseException as err:
            await self._release(changes.reserved)
            if not fail_on_error or isinstance(err, OUTAGE_ERRORS) or not isinstance(err, Exception):
                raise
            logger.exception("execution %s fails: its state change raised", execution_id)
            await self._fail_on_error(tenant_id, execution_id, err)
            return
        changes.committed = True
        for event in changes.events:
            if event.event in _LOGGED_EVENTS:
                logger.info("execution %s: %s", execution_id, event.event, extra={"execution_id": str(execution_id)})
        self._metrics.record(changes.outcomes)
        for message, step, step_input in changes.eager:
            task = asyncio.create_task(self._run(Claimed(message, step, step_input, time.perf_counter())))
            self._running[task] = message.step_execution_id
            task.add_done_callback(self._attempt_done)
        if changes.cancelled_steps:
            self._stop_attempts(set(changes.cancelled_steps))
        await self._outbox.publish(rows)

    async def _write_ahead(
        self, changes: Changes, ahead: Callable[[Changes], Awaitable[None]]
    ) -> list[OutboxRow] | None:
        """Work a new execution's start out ahead of its lock and write it: its outbox rows, or None if it was not.

        Worked out before it joins a group, the start holds no connection meanwhile, and it is one statement.
        """
        try:
            await ahead(changes)
        except NeedsLock:
            return None

        async def write(connection: asyncpg.Connection) -> list[OutboxRow] | None:
            return await changes.write_new(connection, self._topics, self._settings.lease_seconds)

        try:
            return await self._group_commit.run(changes.execution_id, write, statement=True)
        except GroupFailed:
            return None

    def _stop_attempts(self, step_execution_ids: set[uuid.UUID]) -> None:
        """Cancel the attempts of these steps that run in this process (an agent or http call is aborted)."""
        for task, step_execution_id in list(self._running.items()):
            if step_execution_id in step_execution_ids:
                task.cancel()

    async def _fail_on_error(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, err: Exception) -> None:
        async def apply(connection: asyncpg.Connection, changes: Changes) -> None:
            execution = await _lock_execution(connection, execution_id, changes)
            if execution is not None and execution["status"] not in TERMINAL_EXECUTION_STATUSES:
                error = _error(f"internal error: {type(err).__name__}: {err}"[:2000], type="InternalError")
                await self._finish_execution(connection, execution, changes, "failed", error=error)

        await self._change(tenant_id, execution_id, apply, fail_on_error=False)

    # Requests ---------------------------------------------------------------------------------------

    async def handle_command(self, message: RequestMessage | ControlMessage) -> None:
        """Apply a message of the requests or the control topic (one consumer follows both)."""
        if isinstance(message, ExecutionRequested | SubmitExecution):
            await self.handle_request(message)
        else:
            await self.handle_control(message)

    async def handle_request(self, message: RequestMessage) -> None:
        """Apply a message of the requests topic."""
        match message:
            case ExecutionRequested():
                await self._start(message)
            case SubmitExecution():
                await self._submit(message)

    async def _submit(self, message: SubmitExecution) -> None:
        """Start the submitted execution once, or publish why not (SubmissionRejected on the events topic)."""
        rows: Sequence[OutboxRow]
        async with self._pool.acquire() as connection, connection.transaction():
            if not await claim_message(connection, REQUESTS_CONSUMER, message.id):
                return
            try:
                tenant_id = await read_tenant_id(connection, message.tenant)
                started = await start_execution(
                    connection,
                    self._topics,
                    tenant_id=tenant_id,
                    workflow_ref=message.workflow,
                    version=message.version,
                    execution_input=message.input,
                    idempotency_key=message.idempotency_key or f"kafka:{message.id}",
                    triggered_by="kafka",
                    started_by=KAFKA_STARTED_BY,
                    owned_by=None,  # only admins see a submission's executions, unless its workflow is public
                    metadata=message.metadata,
                    tags=message.tags,
                )
                rows = started.outbox
            except ClientError as err:
                rejection = SubmissionRejected(
                    submission_id=message.id,
                    tenant=message.tenant,
                    workflow=message.workflow,
                    idempotency_key=message.idempotency_key,
                    reason=err.detail,
                )
                key = (message.idempotency_key or str(message.id)).encode()
                rejected = OutboxRow(uuid7(), self._topics.events, key, encode(rejection), current_request_id.get())
                rows = await enqueue(connection, [rejected])
                logger.warning("submission %s rejected: %s", message.id, err.detail)
        await self._outbox.publish(rows)

    async def _graph(self, connection: asyncpg.Connection, version_id: uuid.UUID) -> Graph:
        graph = self._graphs.get(version_id)
        if graph is None:  # versions are immutable, so a cached graph never goes stale
            definition = await connection.fetchval("SELECT definition FROM workflow_versions WHERE id = $1", version_id)
            graph = Graph(msgspec.convert(definition, WorkflowDefinition))
            if len(self._graphs) > 10_000:
                self._graphs.clear()
            self._graphs[version_id] = graph
        return graph

    async def _start(self, message: ExecutionRequested) -> None:
        async def apply(connection: asyncpg.Connection, changes: Changes) -> None:
            steps: dict[str, dict[str, Any]] | None = None
            if message.workflow_version_id is not None:  # the usual request: lock and start in one statement
                steps = _new_steps(await self._graph(connection, message.workflow_version_id))
                execution = await _lock_and_start(connection, message, steps, changes)
            else:
                execution = await _lock_execution(connection, message.execution_id, changes)
            if execution is None or execution["status"] != "pending":
                return  # a redelivered request (the status says it was applied) or a cancelled execution
            graph = await self._graph(connection, execution["workflow_version_id"])
            if execution["started_at"] is not None:  # a retry: resume from the steps that did not finish well
                await self._restart(connection, execution, graph, changes)
                return
            if steps is None or not execution["started"]:  # an older request, or a rerun: steps stored here
                steps = _new_steps(graph)
                await self._create_steps(connection, execution, graph, steps)
            await self._begin(connection, execution, graph, steps, changes)

        async def ahead(changes: Changes) -> None:
            """Start the execution as the request says it was created, for ``Changes.write_new`` to write."""
            created, version_id = message.created, message.workflow_version_id
            if created is None or version_id is None:
                raise NeedsLock("the request does not carry the new execution")
            graph = await self._graph(AHEAD_OF_LOCK, version_id)
            execution = {
                "id": message.execution_id,
                "tenant_id": message.tenant_id,
                "status": "pending",
                "input": created.input,
                "workflow_ref": created.workflow_ref,
                "workflow_version": created.workflow_version,
                "workflow_version_id": version_id,
                "parent_execution_id": created.parent_execution_id,
                "parent_step_id": created.parent_step_id,
                "root_execution_id": created.root_execution_id,
                "last_event_sequence": CREATED_SEQUENCE,
                "started_at": None,
                "rerun_of": None,
                "rerun_from_step": None,
                "owned_by": created.owned_by,
            }
            changes.creating = steps = _new_steps(graph)
            changes.last_sequence = CREATED_SEQUENCE
            changes.started_at = datetime.now(UTC)
            await self._begin(AHEAD_OF_LOCK, execution, graph, steps, changes)

        await self._change(message.tenant_id, message.execution_id, apply, ahead=ahead)

    async def _begin(
        self,
        connection: asyncpg.Connection,
        execution: Mapping[str, Any],
        graph: Graph,
        steps: dict[str, dict[str, Any]],
        changes: Changes,
    ) -> None:
        """Start a pending execution whose step rows are ``steps``: its events, timeout, and first steps."""
        changes.events.append(NewEvent("WORKFLOW_STARTED", WorkflowSnapshot(status="running")))
        if execution["parent_execution_id"] is not None:
            changes.outbox.append(
                outgoing(
                    self._topics.control,
                    ChildExecutionStarted(
                        tenant_id=execution["tenant_id"],
                        execution_id=execution["parent_execution_id"],
                        child_execution_id=execution["id"],
                    ),
                )
            )
        changes.outcomes.executions_started += 1
        for row in steps.values():
            if row["status"] != "pending":
                event: EventType = "TASK_COMPLETED" if row["status"] == "completed" else "TASK_SKIPPED"
                snapshot = TaskSnapshot(
                    status=row["status"], output=row["output"], reused_from=str(execution["rerun_of"])
                )
                changes.events.append(NewEvent(event, snapshot, row["step_id"], row["id"]))
        await self._start_execution_timer(connection, graph, changes)
        await self._advance(connection, {**execution, "status": "running"}, graph, changes, steps)

    async def _create_steps(
        self,
        connection: asyncpg.Connection,
        execution: asyncpg.Record,
        graph: Graph,
        steps: dict[str, dict[str, Any]],
    ) -> None:
        """Store the step rows of an execution that starts (reusing a rerun's outputs) and mark it running."""
        if execution["rerun_of"] is not None:
            await self._reuse_outputs(connection, execution, graph, steps)
        await connection.execute(
            """
            WITH created AS (
                INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status,
                    output, completed_at)
                SELECT id, $2, $1, step_id, position, step_type, status, output,
                    CASE WHEN status <> 'pending' THEN clock_timestamp() END
                FROM unnest($3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], $8::jsonb[])
                    AS s(id, step_id, position, step_type, status, output)
            )
            UPDATE executions SET status = 'running', started_at = clock_timestamp() WHERE id = $1
            """,
            execution["id"],
            execution["tenant_id"],
            [row["id"] for row in steps.values()],
            list(steps),
            list(range(len(steps))),
            [row["step_type"] for row in steps.values()],
            [row["status"] for row in steps.values()],
            [row["output"] for row in steps.values()],
        )

    async def _reuse_outputs(
        self,
        connection: asyncpg.Connection,
        execution: asyncpg.Record,
        graph: Graph,
        steps: dict[str, dict[str, Any]],
    ) -> None:
        """Take over, for a rerun, the finished steps of the rerun execution that it does not run again.

        The step the rerun runs from and everything downstream of it run again, and so do steps that did
        not finish well.
        """
        again = downstream(graph.definition, execution["rerun_from_step"])
        for source in await connection.fetch(
            "SELECT step_id, status, output FROM step_executions "
            "WHERE execution_id = $1 AND status IN ('completed', 'skipped')",
            execution["rerun_of"],
        ):
            row = steps.get(source["step_id"])
            if row is not None and source["step_id"] not in again:
                row.update(status=source["status"], output=source["output"])

    async def _start_execution_timer(self, connection: asyncpg.Connection, graph: Graph, changes: Changes) -> None:
        if graph.definition.timeout:
            deadline = datetime.now(UTC) + timedelta(seconds=graph.definition.timeout)
            await self._start_timer(connection, changes, None, "execution_timeout", deadline)

    async def _restart(
        self, connection: asyncpg.Connection, execution: asyncpg.Record, graph: Graph, changes: Changes
    ) -> None:
        """Run a retried execution again from its failed and cancelled steps; completed steps keep their output.

        Each reset step starts a new generation, so its attempts (and a workflow step's child) get new
        idempotency keys.
        """
        await connection.execute(
            """
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
            """,
            execution["id"],
        )
        changes.events.append(NewEvent("WORKFLOW_STARTED", WorkflowSnapshot(status="running")))
        changes.outcomes.executions_started += 1
        await self._start_execution_timer(connection, graph, changes)
        await self._advance(connection, {**execution, "status": "running"}, graph, changes)

    # Graph ------------------------------------------------------------------------------------------

    async def _advance(
        self,
        connection: asyncpg.Connection,
        execution: asyncpg.Record,
        graph: Graph,
        changes: Changes,
        steps: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Schedule every step whose needs are met, skip those whose ``when`` is false, finish the execution.

        ``steps`` are the execution's step rows as this transaction left them, when the caller has them.
        Nothing starts (and nothing finishes) while the execution is paused: resuming advances it.
        """
        if execution["status"] != "running":
            return
        if steps is None:
            steps = await _read_steps(connection, execution["id"])
        statuses = {step_id: step["status"] for step_id, step in steps.items()}
        progressed = True
        while progressed and not graph.failed_step(statuses):
            progressed = False
            context = _template_context(execution, steps)
            for step in graph.ready(statuses):
                row = steps[step.id]
                try:
                    if step.when is not None and not render_condition(step.when, context):
                        await self._finish_without_running(connection, changes, row, "skipped", None)
                        statuses[step.id] = row["status"] = "skipped"
                        progressed = True
                        continue
                    # An http step's secret headers stay masked in its input: opened only when it is sent.
                    step_input = render(
                        masked_request(step.request) if step.type == "http" and step.request else step.input, context
                    )
                    _check_storable(step_input)
                except TemplateError as err:
                    await self._finish_without_running(connection, changes, row, "failed", _error(str(err)))
                    statuses[step.id] = row["status"] = "failed"
                    progressed = True
                    continue
                if step.type == "sleep":
                    try:
                        fire_at = _sleep_until(step, context)
                    except (TemplateError, ValueError) as err:
                        await self._finish_without_running(connection, changes, row, "failed", _error(str(err)))
                        statuses[step.id] = row["status"] = "failed"
                        progressed = True
                        continue
                    await changes.flush(connection)
                    await connection.execute(
                        "UPDATE step_executions SET status = 'running', input = $2, scheduled_at = clock_timestamp(), "
                        "started_at = clock_timestamp() WHERE id = $1",
                        row["id"],
                        {"until": fire_at.isoformat()},
                    )
                    statuses[step.id] = row["status"] = "running"
                    changes.outcomes.steps_started.append(step.type)
                    timer_id = await self._start_timer(connection, changes, row["id"], "sleep", fire_at)
                    changes.events.append(
                        NewEvent(
                            "TIMER_STARTED",
                            TimerSnapshot(status="running", timer_id=str(timer_id), fire_at=fire_at.isoformat()),
                            step.id,
                            row["id"],
                        )
                    )
                    continue
                if step.type == "wait":
                    statuses[step.id] = row["status"] = await self._create_promise(connection, changes, step, row)
                    progressed = progressed or row["status"] == "failed"
                    continue
                if step.type == "workflow":
                    status = await self._start_child(connection, changes, execution, step, row, step_input)
                    statuses[step.id] = row["status"] = status
                    progressed = progressed or status == "failed"
                    continue
                if self._runs_here(step):
                    await self._run_here(connection, changes, step, row, step_input)
                    statuses[step.id] = row["status"]
                    progressed = progressed or row["status"] != "scheduled"
                    continue
                statuses[step.id] = row["status"] = "scheduled"
                await self._dispatch(
                    connection, changes, step, row["id"], row["generation"], row["attempts"] + 1, step_input
                )
        if failed := graph.failed_step(statuses):
            message = (steps[failed]["error"] or {}).get("message", "failed")
            await self._finish_execution(
                connection,
                execution,
                changes,
                "failed",
                error=_error(f"step {failed!r} failed: {message}", stepId=failed),
            )
        elif graph.finished(statuses):
            try:
                if graph.definition.output is None:
                    output = {step_id: steps[step_id]["output"] for step_id in graph.leaves()}
                else:
                    output = render(graph.definition.output, _template_context(execution, steps))
            except TemplateError as err:
                await self._finish_execution(
                    connection, execution, changes, "failed", error=_error(f"workflow output: {err}")
                )
            else:
                await self._finish_execution(connection, execution, changes, "completed", output=output)

    async def _dispatch(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        step: StepDefinition,
        step_execution_id: uuid.UUID,
        generation: int,
        attempt: int,
        step_input: Any,
    ) -> None:
        """Start attempt ``attempt`` of a scheduled step, here or through the tasks topic.

        Here at once (eager) when this process has room, which saves a transaction and a broker round trip;
        otherwise any executor claims it from the tasks topic.
        """
        changes.events.append(
            NewEvent("TASK_CREATED", TaskSnapshot(status="scheduled", attempt=attempt), step.id, step_execution_id)
        )
        message = TaskDispatched(
            tenant_id=changes.tenant_id,
            execution_id=changes.execution_id,
            step_execution_id=step_execution_id,
            step_id=step.id,
            generation=generation,
            attempt=attempt,
        )
        if self._settings.eager_dispatch and self._busy < self._capacity:
            self._busy += 1
            changes.reserved += 1  # from here on, a failure releases the slot
            changes.eager.append((message, step, step_input))
            await self._start_attempt(connection, changes, message, step.type, step_input)
        elif changes.creating is not None:  # a new execution's step, inserted so
            changes.creating[step.id]["input"] = step_input
            changes.outbox.append(outgoing(self._topics.tasks, message))
        else:
            await changes.flush(connection)
            await connection.execute(
                "UPDATE step_executions SET status = 'scheduled', input = $2, scheduled_at = clock_timestamp() "
                "WHERE id = $1",
                step_execution_id,
                step_input,
            )
            changes.outbox.append(outgoing(self._topics.tasks, message))

    async def _start_attempt(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        message: TaskDispatched,
        step_type: str,
        step_input: Any,
    ) -> None:
        """Mark a step running under this worker's lease, with its attempt row (and pending attempt results)."""
        self._attempt_started(changes, message, step_type)
        if changes.creating is not None:  # a new execution's step, inserted so with its attempt
            changes.creating[message.step_id].update(
                status="running", attempts=message.attempt, owner=self.worker, input=step_input
            )
            return
        finishes, finish_args = changes.finishes.carry(10)
        rows = await connection.fetch(
            f"""
            WITH {finishes} started AS (
                UPDATE step_executions SET status = 'running', attempts = $2, owner = $3, input = $5,
                    lease_expires_at = clock_timestamp() + make_interval(secs => $4),
                    scheduled_at = coalesce(scheduled_at, clock_timestamp()),
                    started_at = coalesce(started_at, clock_timestamp())
                WHERE id = $1
            ), attempt AS (
                INSERT INTO task_attempts (id, tenant_id, step_execution_id, execution_id, generation, number,
                    status, worker)
                VALUES ($6, $7, $1, $8, $9, $2, 'running', $3)
                ON CONFLICT (step_execution_id, generation, number) DO NOTHING
            )
            {FINISHED_STEPS if finishes else "SELECT WHERE false"}
            """,
            message.step_execution_id,
            message.attempt,
            self.worker,
            self._settings.lease_seconds,
            step_input,
            uuid7(),
            message.tenant_id,
            message.execution_id,
            message.generation,
            *finish_args,
        )
        Finishes.carried(rows, changes.outcomes)

    def _attempt_started(self, changes: Changes, message: TaskDispatched, step_type: str) -> None:
        """The event, log record and count of an attempt this worker starts."""
        changes.events.append(
            NewEvent(
                "TASK_STARTED",
                TaskSnapshot(status="running", attempt=message.attempt, worker=self.worker),
                message.step_id,
                message.step_execution_id,
            )
        )
        if message.attempt == 1:  # later attempts are retries (or recoveries) of a step already started
            changes.outcomes.steps_started.append(step_type)
        changes.log(
            "INFO",
            f"attempt {message.attempt} started on {self.worker}",
            task_id=message.step_execution_id,
            step_id=message.step_id,
            attempt=message.attempt,
        )

    async def _start_timer(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        step_execution_id: uuid.UUID | None,
        kind: str,
        fire_at: datetime,
    ) -> uuid.UUID:
        """Store a durable timer and tell the scheduler about it; it fires TimerFired on the control topic."""
        await changes.flush(connection)
        timer_id = uuid7()
        await connection.execute(
            "INSERT INTO timers (id, tenant_id, execution_id, step_execution_id, kind, fire_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            timer_id,
            changes.tenant_id,
            changes.execution_id,
            step_execution_id,
            kind,
            fire_at,
        )
        changes.outbox.append(
            outgoing(
                self._topics.timers,
                TimerScheduled(
                    tenant_id=changes.tenant_id,
                    execution_id=changes.execution_id,
                    timer_id=timer_id,
                    fire_at=fire_at,
                ),
            )
        )
        return timer_id

    async def _create_promise(
        self, connection: asyncpg.Connection, changes: Changes, step: StepDefinition, row: dict[str, Any]
    ) -> str:
        """Start a wait step: a pending promise (and a timer when the wait is bounded); the step's new status."""
        await changes.flush(connection)
        name = step.promise or step.id
        expires_at = datetime.now(UTC) + timedelta(seconds=step.timeout) if step.timeout else None
        promise_id = await connection.fetchval(
            "INSERT INTO promises (id, tenant_id, execution_id, step_execution_id, name, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (execution_id, name) DO NOTHING RETURNING id",
            uuid7(),
            changes.tenant_id,
            changes.execution_id,
            row["id"],
            name,
            expires_at,
        )
        if promise_id is None:
            error = _error(f"promise {name!r} is already used by another step of this execution", retryable=False)
            await self._finish_without_running(connection, changes, row, "failed", error)
            return "failed"
        await connection.execute(
            "UPDATE step_executions SET status = 'running', input = $2, scheduled_at = clock_timestamp(), "
            "started_at = clock_timestamp() "
            "WHERE id = $1",
            row["id"],
            {"promise": name},
        )
        if expires_at is not None:
            await self._start_timer(connection, changes, row["id"], "promise", expires_at)
        changes.outcomes.steps_started.append(step.type)
        changes.events.append(
            NewEvent(
                "PROMISE_CREATED",
                PromiseSnapshot(
                    status="running",
                    promise=name,
                    promise_id=str(promise_id),
                    expires_at=expires_at.isoformat() if expires_at else None,
                ),
                step.id,
                row["id"],
            )
        )
        return "running"

    async def _start_child(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        execution: asyncpg.Record,
        step: StepDefinition,
        row: dict[str, Any],
        step_input: Any,
    ) -> str:
        """Start a workflow step's child execution (one per attempt of the step); the step's new status."""
        assert step.workflow is not None
        await changes.flush(connection)
        attempt = row["attempts"] + 1
        if step_input is not None and not isinstance(step_input, dict):
            error = _error("a workflow step's input must be an object (the child's input)", retryable=False)
            await self._finish_without_running(connection, changes, row, "failed", error)
            return "failed"
        # Each step up is a lookup by key (a join with the recursion's rows may be planned as a scan).
        depth = await connection.fetchval(
            "WITH RECURSIVE ancestors AS (SELECT parent_execution_id FROM executions WHERE id = $1 UNION ALL "
            "SELECT (SELECT e.parent_execution_id FROM executions e WHERE e.id = a.parent_execution_id) "
            "FROM ancestors a WHERE a.parent_execution_id IS NOT NULL) "
            "SELECT count(*) FROM ancestors",
            execution["id"],
        )
        if depth >= MAX_CHILD_DEPTH:
            error = _error(f"child workflows may nest {MAX_CHILD_DEPTH} deep; is {step.workflow!r} recursive?")
            await self._finish_without_running(connection, changes, row, "failed", {**error, "retryable": False})
            return "failed"
        try:
            child = await start_execution(
                connection,
                self._topics,
                tenant_id=changes.tenant_id,
                workflow_ref=step.workflow,
                version=step.version,
                execution_input=step_input or {},
                idempotency_key=f"child:{execution['id']}:{step.id}:{row['generation']}:{attempt}",
                triggered_by="workflow",
                started_by=parent_started_by(execution["id"]),
                owned_by=execution["owned_by"],  # a child belongs to whoever owns its parent
                parent=ParentStep(execution["id"], step.id, execution["root_execution_id"]),
            )
        except ClientError as err:
            await self._finish_without_running(connection, changes, row, "failed", _error(err.detail, retryable=False))
            return "failed"
        if (
            not child.created
            and await connection.fetchval("SELECT parent_execution_id FROM executions WHERE id = $1", child.id)
            != execution["id"]
        ):
            error = _error(f"the idempotency key of this child is taken by execution {child.id}", retryable=False)
            await self._finish_without_running(connection, changes, row, "failed", error)
            return "failed"
        changes.enqueued.extend(child.outbox)
        await connection.execute(
            "UPDATE step_executions SET status = 'running', input = $2, attempts = $3, "
            "scheduled_at = coalesce(scheduled_at, clock_timestamp()), started_at = coalesce(started_at, "
            "clock_timestamp()) WHERE id = $1",
            row["id"],
            {"workflow": step.workflow, "childExecutionId": str(child.id), "input": step_input or {}},
            attempt,
        )
        if attempt == 1:  # a later child is a retry of the step
            changes.outcomes.steps_started.append(step.type)
        changes.events.append(
            NewEvent(
                "CHILD_WORKFLOW_INITIATED",
                ChildWorkflowSnapshot(
                    status="running", workflow=step.workflow, child_execution_id=str(child.id), attempt=attempt
                ),
                step.id,
                row["id"],
            )
        )
        return "running"

    async def _child_started(
        self,
        connection: asyncpg.Connection,
        execution: asyncpg.Record,
        message: ChildExecutionStarted,
        changes: Changes,
    ) -> None:
        step = await connection.fetchrow(
            "SELECT s.id, s.step_id FROM executions c JOIN step_executions s "
            "ON s.execution_id = c.parent_execution_id AND s.step_id = c.parent_step_id "
            "WHERE c.id = $1 AND c.parent_execution_id = $2 AND s.status = 'running' "
            "AND s.input ->> 'childExecutionId' = $3",
            message.child_execution_id,
            execution["id"],
            str(message.child_execution_id),
        )
        if step is not None:  # else the step moved on (a late message after the child already finished)
            data = ChildWorkflowSnapshot(child_execution_id=str(message.child_execution_id), status="running")
            changes.events.append(NewEvent("CHILD_WORKFLOW_STARTED", data, step["step_id"], step["id"]))

    async def _child_finished(
        self,
        connection: asyncpg.Connection,
        execution: asyncpg.Record,
        message: ChildExecutionFinished,
        changes: Changes,
    ) -> None:
        child = await connection.fetchrow(
            "SELECT status, output, error, parent_step_id FROM executions WHERE id = $1 AND parent_execution_id = $2",
            message.child_execution_id,
            execution["id"],
        )
        if child is None or child["status"] not in TERMINAL_EXECUTION_STATUSES:
            return
        step = await connection.fetchrow(
            "SELECT id, step_id, status, input, attempts FROM step_executions "
            "WHERE execution_id = $1 AND step_id = $2 FOR UPDATE",
            execution["id"],
            child["parent_step_id"],
        )
        if (
            step is None
            or step["status"] != "running"
            or (step["input"] or {}).get("childExecutionId") != str(message.child_execution_id)
        ):
            return
        data = ChildWorkflowSnapshot(child_execution_id=str(message.child_execution_id), status=child["status"])
        if child["status"] == "completed":
            changes.events.append(NewEvent("CHILD_WORKFLOW_COMPLETED", data, step["step_id"], step["id"]))
            await self._settle_step(connection, changes, step, output=child["output"])
        else:
            changes.events.append(NewEvent("CHILD_WORKFLOW_FAILED", data, step["step_id"], step["id"]))
            reason = (child["error"] or {}).get("message", child["status"])
            error = _error(
                f"child execution {message.child_execution_id} {child['status']}: {reason}",
                type="ChildFailed",
                retryable=child["status"] == "failed",
            )
            graph = await self._graph(connection, execution["workflow_version_id"])
            policy = graph.steps[step["step_id"]].retry
            if error["retryable"] and policy and step["attempts"] < policy.max_attempts:
                # Like any failed attempt: wait on a durable timer, then start a new child.
                retry_at = datetime.now(UTC) + timedelta(seconds=policy.delay(step["attempts"], random.random()))
                await connection.execute(
                    "UPDATE step_executions SET status = 'scheduled', error = $2 WHERE id = $1", step["id"], error
                )
                await self._start_timer(connection, changes, step["id"], "retry", retry_at)
                changes.outcomes.retries.append("workflow")
                changes.events.append(
                    NewEvent(
                        "TASK_FAILED",
                        TaskSnapshot(
                            status="scheduled", attempt=step["attempts"], error=error, retry_at=retry_at.isoformat()
                        ),
                        step["step_id"],
                        step["id"],
                    )
                )
                return
            await self._settle_step(connection, changes, step, error=error)
        graph = await self._graph(connection, execution["workflow_version_id"])
        await self._advance(connection, execution, graph, changes)

    async def _settle_step(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        step: asyncpg.Record,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """Finish a step that ran without an attempt (sleep, wait) and cancel its pending timers."""
        status = "failed" if error else "completed"
        finished = await connection.fetchrow(
            "UPDATE step_executions SET status = $2, output = $3, error = $4, completed_at = "
            "clock_timestamp() WHERE id = $1 RETURNING step_type, " + STEP_SECONDS,
            step["id"],
            status,
            output,
            error,
        )
        changes.outcomes.steps_finished.append((finished["step_type"], status, finished["seconds"]))
        await connection.execute(
            "UPDATE timers SET status = 'cancelled' WHERE step_execution_id = $1 AND status = 'pending'", step["id"]
        )
        changes.events.append(
            NewEvent(
                "TASK_FAILED" if error else "TASK_COMPLETED",
                TaskSnapshot(status=status, output=output, error=error),
                step["step_id"],
                step["id"],
            )
        )

    async def _finish_without_running(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        row: dict[str, Any],
        status: str,
        error: dict[str, Any] | None,
    ) -> None:
        if changes.creating is not None:  # a new execution's step, inserted so
            changes.outcomes.steps_finished.append((row["step_type"], status, None))
        else:
            await changes.flush(connection)
            finished = await connection.fetchrow(
                "UPDATE step_executions SET status = $2, error = $3, completed_at = clock_timestamp() WHERE id = $1 "
                "RETURNING step_type, " + STEP_SECONDS,
                row["id"],
                status,
                error,
            )
            changes.outcomes.steps_finished.append((finished["step_type"], status, finished["seconds"]))
        row["error"] = error
        event: EventType = "TASK_SKIPPED" if status == "skipped" else "TASK_FAILED"
        changes.events.append(NewEvent(event, TaskSnapshot(status=status, error=error), row["step_id"], row["id"]))

    async def _finish_execution(
        self,
        connection: asyncpg.Connection,
        execution: asyncpg.Record,
        changes: Changes,
        status: str,
        *,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        if status == "completed":
            # Every step finished, so nothing waits on a timer but perhaps the execution's own timeout, whose end
            # needs no event: the statement that appends the final events writes the end (see Changes.write).
            changes.end = ExecutionEnd(status, output, error)
        else:
            # Whatever still waits on a timer (sleeps, retries, the execution's own timeout) waits no more. Pending
            # attempt results (the last step's, usually) come along: they touch neither the execution nor its timers.
            finishes, finish_args = changes.finishes.carry(5)
            rows = await connection.fetch(
                f"WITH {finishes} finished AS (UPDATE executions SET status = $2, output = $3, "
                "error = $4, completed_at = clock_timestamp() WHERE id = $1), "
                "cancelled AS (UPDATE timers t SET status = 'cancelled' "
                "WHERE t.execution_id = $1 AND t.status = 'pending' "
                "RETURNING t.id, t.kind, t.step_execution_id AS task_id, "
                "(SELECT step_id FROM step_executions s WHERE s.id = t.step_execution_id)) "
                "SELECT id, kind, task_id, step_id, NULL AS step_type, NULL AS step_status, NULL::float8 AS seconds "
                "FROM cancelled"
                + (f" UNION ALL SELECT NULL, NULL, NULL, NULL, * FROM ({FINISHED_STEPS}) AS f" if finishes else ""),
                execution["id"],
                status,
                output,
                error,
                *finish_args,
            )
            Finishes.carried(rows, changes.outcomes)
            timers = [row for row in rows if row["id"] is not None]
            for timer in timers:
                if timer["kind"] == "sleep":  # other timers are internal: TASK_CANCELLED or the final event says it
                    changes.events.append(
                        NewEvent(
                            "TIMER_CANCELLED",
                            TimerSnapshot(timer_id=str(timer["id"])),
                            timer["step_id"],
                            timer["task_id"],
                        )
                    )
            children = await connection.fetch(
                "SELECT id FROM executions "
                "WHERE parent_execution_id = $1 AND status IN ('pending', 'running', 'paused')",
                execution["id"],
            )
            changes.outbox.extend(
                outgoing(
                    self._topics.control,
                    CancelExecution(
                        tenant_id=execution["tenant_id"],
                        execution_id=child["id"],
                        reason=f"the parent execution {status}",
                        requested_by="parent",
                    ),
                )
                for child in children
            )
            rejected = await connection.fetch(
                "UPDATE promises p SET status = 'rejected', error = $2, settled_at = clock_timestamp() FROM "
                "step_executions s "
                "WHERE p.execution_id = $1 AND p.status = 'pending' AND s.execution_id = $1 "
                "AND s.id = p.step_execution_id "
                "RETURNING p.name, s.id AS task_id, s.step_id",
                execution["id"],
                _error(f"the execution {status}"),
            )
            for promise in rejected:
                changes.events.append(
                    NewEvent(
                        "PROMISE_REJECTED",
                        PromiseSnapshot(promise=promise["name"]),
                        promise["step_id"],
                        promise["task_id"],
                    )
                )
            cancelled = await connection.fetch(
                "UPDATE step_executions SET status = 'cancelled', completed_at = clock_timestamp(), owner = NULL, "
                "lease_expires_at = NULL WHERE execution_id = $1 AND status IN ('pending', 'scheduled', 'running') "
                "RETURNING id, step_id, step_type, " + STEP_SECONDS,
                execution["id"],
            )
            changes.outcomes.steps_finished.extend(
                (step["step_type"], "cancelled", step["seconds"]) for step in cancelled
            )
            await connection.execute(
                "UPDATE task_attempts SET status = 'cancelled', finished_at = clock_timestamp() "
                "WHERE execution_id = $2 AND step_execution_id = ANY($1::uuid[]) AND status = 'running'",
                [step["id"] for step in cancelled],
                execution["id"],
            )
            changes.cancelled_steps.extend(step["id"] for step in cancelled)
            for step in cancelled:
                changes.events.append(
                    NewEvent("TASK_CANCELLED", TaskSnapshot(status="cancelled"), step["step_id"], step["id"])
                )
        changes.events.append(
            NewEvent(FINISHED_EVENTS[status], WorkflowSnapshot(status=status, output=output, error=error))
        )
        if execution["parent_execution_id"] is not None:
            changes.outbox.append(
                outgoing(
                    self._topics.control,
                    ChildExecutionFinished(
                        tenant_id=execution["tenant_id"],
                        execution_id=execution["parent_execution_id"],
                        child_execution_id=execution["id"],
                    ),
                )
            )
        started_at = execution["started_at"]  # None when the execution finishes in the transaction that starts it
        seconds = (datetime.now(UTC) - started_at).total_seconds() if started_at is not None else 0.0
        changes.outcomes.executions_finished.append((status, seconds))

    # Control ----------------------------------------------------------------------------------------

    async def handle_control(self, message: ControlMessage) -> None:
        """Apply a message of the control topic: a fired timer, a settled promise or a cancellation."""

        async def apply(connection: asyncpg.Connection, changes: Changes) -> None:
            if not await claim_message(connection, CONTROL_CONSUMER, message.id):
                return
            execution = await _lock_execution(connection, message.execution_id, changes)
            if execution is None or execution["status"] in TERMINAL_EXECUTION_STATUSES:
                return
            match message:
                case TimerFired():
                    await self._timer_fired(connection, execution, message, changes)
                case PromiseSettled():
                    await self._promise_settled(connection, execution, message, changes)
                case ChildExecutionStarted():
                    await self._child_started(connection, execution, message, changes)
                case ChildExecutionFinished():
                    await self._child_finished(connection, execution, message, changes)
                case AdvanceExecution() if execution["status"] == "running":
                    graph = await self._graph(connection, execution["workflow_version_id"])
                    await self._redispatch_stranded(connection, execution, graph, changes)
                    await self._advance(connection, execution, graph, changes)
                case CancelExecution():
                    await connection.execute(
                        "UPDATE executions SET cancelled_at = coalesce(cancelled_at, clock_timestamp()), "
                        "cancelled_by = coalesce(cancelled_by, $2) WHERE id = $1",
                        execution["id"],
                        message.requested_by,
                    )
                    await self._finish_execution(
                        connection,
                        execution,
                        changes,
                        "cancelled",
                        error=_error(message.reason or "cancelled", type="Cancelled"),
                    )

        await self._change(message.tenant_id, message.execution_id, apply)

    async def _redispatch_stranded(
        self, connection: asyncpg.Connection, execution: asyncpg.Record, graph: Graph, changes: Changes
    ) -> None:
        """Start again the scheduled steps that nothing else will start.

        That is a claim that found the execution paused, a retry timer that fired while it was paused, or a
        lost task message. A duplicate dispatch is harmless: a claim takes an attempt only once.
        """
        stranded = await connection.fetch(
            "SELECT s.id, s.step_id, s.generation, s.attempts, s.input FROM step_executions s "
            "WHERE s.execution_id = $1 AND s.status = 'scheduled' AND NOT EXISTS ("
            "SELECT 1 FROM timers t WHERE t.execution_id = $1 AND t.step_execution_id = s.id AND t.status = 'pending')",
            changes.execution_id,
        )
        for step in stranded:
            definition = graph.steps[step["step_id"]]
            if definition.type == "workflow":
                child_input = (step["input"] or {}).get("input")
                await self._start_child(connection, changes, execution, definition, dict(step), child_input)
            else:
                await self._dispatch(
                    connection, changes, definition, step["id"], step["generation"], step["attempts"] + 1, step["input"]
                )

    async def _timer_fired(
        self, connection: asyncpg.Connection, execution: asyncpg.Record, message: TimerFired, changes: Changes
    ) -> None:
        if message.kind == "execution_timeout":
            graph = await self._graph(connection, execution["workflow_version_id"])
            error = _error(f"the execution did not finish within {graph.definition.timeout} s", type="Timeout")
            await self._finish_execution(connection, execution, changes, "failed", error=error)
            return
        step = await connection.fetchrow(
            "SELECT id, step_id, status, attempts, generation, input FROM step_executions WHERE id = $1 FOR UPDATE",
            message.step_execution_id,
        )
        if step is None:
            return
        if message.kind == "retry" and step["status"] == "scheduled" and execution["status"] == "running":
            graph = await self._graph(connection, execution["workflow_version_id"])
            definition = graph.steps[step["step_id"]]
            if definition.type == "workflow":
                row = dict(step)
                status = await self._start_child(
                    connection, changes, execution, definition, row, (step["input"] or {}).get("input")
                )
                if status == "failed":
                    await self._advance(connection, execution, graph, changes)
                return
            await self._dispatch(
                connection,
                changes,
                graph.steps[step["step_id"]],
                step["id"],
                step["generation"],
                step["attempts"] + 1,
                step["input"],
            )
        elif message.kind == "sleep" and step["status"] == "running":
            changes.events.append(
                NewEvent("TIMER_FIRED", TimerSnapshot(timer_id=str(message.timer_id)), step["step_id"], step["id"])
            )
            await self._settle_step(connection, changes, step, output={"firedAt": datetime.now(UTC).isoformat()})
            graph = await self._graph(connection, execution["workflow_version_id"])
            await self._advance(connection, execution, graph, changes)
        elif message.kind == "promise" and step["status"] == "running":
            promise = await connection.fetchval(
                "UPDATE promises SET status = 'timed_out', settled_at = clock_timestamp() "
                "WHERE execution_id = $2 AND step_execution_id = $1 AND status = 'pending' RETURNING name",
                step["id"],
                execution["id"],
            )
            if promise is not None:
                error = _error(f"promise {promise!r} was not settled in time", type="Timeout", retryable=False)
                await self._settle_step(connection, changes, step, error=error)
                graph = await self._graph(connection, execution["workflow_version_id"])
                await self._advance(connection, execution, graph, changes)

    async def _promise_settled(
        self, connection: asyncpg.Connection, execution: asyncpg.Record, message: PromiseSettled, changes: Changes
    ) -> None:
        step = await connection.fetchrow(
            "SELECT id, step_id, status FROM step_executions WHERE id = $1 FOR UPDATE", message.step_execution_id
        )
        promise = await connection.fetchrow(
            "SELECT name, status, value, error FROM promises WHERE id = $1", message.promise_id
        )
        if step is None or promise is None or step["status"] != "running":
            return
        if promise["status"] == "resolved":
            changes.events.append(
                NewEvent(
                    "PROMISE_RESOLVED",
                    PromiseSnapshot(promise=promise["name"], value=promise["value"]),
                    step["step_id"],
                    step["id"],
                )
            )
            await self._settle_step(connection, changes, step, output=promise["value"])
        elif promise["status"] == "rejected":
            changes.events.append(
                NewEvent(
                    "PROMISE_REJECTED",
                    PromiseSnapshot(promise=promise["name"], error=promise["error"]),
                    step["step_id"],
                    step["id"],
                )
            )
            reason = (promise["error"] or {}).get("message", "rejected")
            error = _error(
                f"promise {promise['name']!r} was rejected: {reason}", type="PromiseRejected", retryable=False
            )
            await self._settle_step(connection, changes, step, error=error)
        else:
            return
        graph = await self._graph(connection, execution["workflow_version_id"])
        await self._advance(connection, execution, graph, changes)

    # Tasks ------------------------------------------------------------------------------------------

    async def handle_task(self, message: TaskDispatched) -> None:
        """Claim the attempt and run it in the background; the offset is committed once it is claimed.

        A claimed attempt is owned under a lease: if this process dies, the scheduler finds the expired
        lease and dispatches the step again. With no room for another attempt, wait for one to finish.
        """
        async with self._capacity_freed:
            await self._capacity_freed.wait_for(lambda: self._busy < self._capacity)
            self._busy += 1  # reserved now, so that concurrent claims cannot overshoot the capacity
        claimed: Changes | None = None

        async def apply(connection: asyncpg.Connection, changes: Changes) -> None:
            nonlocal claimed
            execution = await _lock_execution(connection, message.execution_id, changes)
            if execution is None or execution["status"] != "running":
                return
            step = await connection.fetchrow(
                "SELECT status, attempts, generation, input FROM step_executions WHERE id = $1 FOR UPDATE",
                message.step_execution_id,
            )
            if (
                step is None
                or step["status"] != "scheduled"
                or step["generation"] != message.generation
                or step["attempts"] >= message.attempt
            ):
                return  # a redelivered or superseded dispatch
            graph = await self._graph(connection, execution["workflow_version_id"])
            definition = graph.steps[message.step_id]
            changes.eager.append((message, definition, step["input"]))  # takes the reservation if it commits
            claimed = changes
            await self._start_attempt(connection, changes, message, definition.type, step["input"])

        try:
            await self._change(message.tenant_id, message.execution_id, apply)
        finally:
            # A change that rolled back may have been written again alone, so only a committed claim counts.
            if claimed is None or not claimed.committed:
                await self._release(1)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        asyncio.get_running_loop().create_task(self._release(1))
        if not task.cancelled() and task.exception() is not None:
            logger.error("attempt crashed before its result was recorded", exc_info=task.exception())

    async def _release(self, slots: int) -> None:
        """Give back attempt slots and wake claims waiting for room."""
        if slots:
            async with self._capacity_freed:
                self._busy -= slots
                self._capacity_freed.notify_all()

    async def _run(self, claimed: Claimed) -> None:
        message, step = claimed.message, claimed.step
        attempt_logger = AttemptLogger()
        policy = step.retry
        output: Any
        error: dict[str, Any] | None
        if step.type == "agent":
            try:
                agent = await load_agent(self._pool, self._cipher, message.tenant_id, step.agent or "")
            except FlowlineError as err:  # the agent is gone, inactive or its credentials unreadable
                output, error = None, _error(err.detail, type=type(err).__name__, retryable=False)
            else:
                policy = policy or retry_policy(agent)
                output, error = await self._attempt(message, step, claimed.step_input, attempt_logger, agent)
        else:
            output, error = await self._attempt(message, step, claimed.step_input, attempt_logger)
        duration = time.perf_counter() - claimed.started
        self._metrics.attempt_finished(step.type, error is not None, duration)
        while True:
            try:
                await self._record_result(claimed, output, error, attempt_logger, duration, policy)
                return
            except OUTAGE_ERRORS as err:  # keep the result until the database takes it
                logger.warning("recording the result of %s failed, retrying: %s", message.step_execution_id, err)
                await asyncio.sleep(1)
            except Exception as err:
                if error is not None and error.get("type") == "Unrecordable":
                    raise
                # The result itself cannot be stored (e.g. text PostgreSQL refuses): fail the attempt instead,
                # so that the step never stays running behind a lease this process keeps renewing.
                logger.exception("the result of %s cannot be recorded", message.step_execution_id)
                output = None
                error = _error(
                    f"the result cannot be recorded: {type(err).__name__}: {err}", type="Unrecordable", retryable=False
                )

    async def _attempt(
        self,
        message: TaskDispatched,
        step: StepDefinition,
        step_input: Any,
        attempt_logger: AttemptLogger,
        agent: Agent | None = None,
    ) -> tuple[Any, dict[str, Any] | None]:
        """Run one attempt of an action, agent or http step: its output, or the error that failed it."""
        context = ActionContext(
            execution_id=str(message.execution_id),
            step_id=message.step_id,
            attempt=message.attempt,
            idempotency_key=f"{message.execution_id}:{message.step_id}:{message.generation}",
            logger=attempt_logger,
        )
        work: Awaitable[Any]
        try:
            if step.type == "http":
                request = msgspec.convert(step_input, HttpRequest)
                secrets = {
                    name: open_secret(self._cipher, sealed, f"the header {name!r} of step {step.id!r}")
                    for name, sealed in request_secrets(step.request).items()
                }
                work = http_step.send(
                    self._http, request, context, secret_headers=secrets, timeout_seconds=step.timeout
                )
            elif agent is not None:
                work = call_agent(self._http, agent, step_input, context)
            else:
                work = self._actions[step.action or ""](step_input, context)
            return msgspec.to_builtins(await asyncio.wait_for(work, timeout=step.timeout)), None
        except ActionFailed as err:
            error = _error(str(err), type="ActionFailed", retryable=err.retryable)
            if err.retry_after is not None:
                error["retryAfter"] = err.retry_after
            return None, error
        except FlowlineError as err:  # credentials that cannot be opened
            return None, _error(err.detail, type=type(err).__name__, retryable=False)
        except TimeoutError:
            return None, _error(f"timed out after {step.timeout} s", type="Timeout", retryable=True)
        except Exception as err:
            return None, _error(f"{type(err).__name__}: {err}", type=type(err).__name__, retryable=True)

    def _runs_here(self, step: StepDefinition) -> bool:
        """Whether a step is an instant action, run inside the change that makes it ready.

        The built-in actions compute their output from their input alone, at once: running them in that
        change writes their attempt, result and events with it, instead of a change to start the attempt
        and another to record its result (and, without room here, a trip through the tasks topic). An
        action from a pack may wait or have effects elsewhere, so it runs as an attempt under a lease.
        """
        if step.type != "action" or not self._settings.eager_dispatch:
            return False
        action = self._actions.get(step.action or "")
        return action is not None and action is BUILTIN_ACTIONS.get(step.action or "")

    async def _run_here(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        step: StepDefinition,
        row: dict[str, Any],
        step_input: Any,
    ) -> None:
        """Run an instant action's attempt inside this change (see ``_runs_here``) and settle it in ``row``."""
        message = TaskDispatched(
            tenant_id=changes.tenant_id,
            execution_id=changes.execution_id,
            step_execution_id=row["id"],
            step_id=step.id,
            generation=row["generation"],
            attempt=row["attempts"] + 1,
        )
        changes.events.append(
            NewEvent("TASK_CREATED", TaskSnapshot(status="scheduled", attempt=message.attempt), step.id, row["id"])
        )
        self._attempt_started(changes, message, step.type)
        attempt_logger = AttemptLogger()
        started = time.perf_counter()
        output, error = await self._attempt(message, step, step_input, attempt_logger)
        duration = time.perf_counter() - started
        changes.outcomes.attempts.append((step.type, error is not None, duration))
        row["attempts"] = message.attempt
        await self._settle_attempt(
            connection,
            changes,
            message,
            step.type,
            step.retry,
            output,
            error,
            attempt_logger,
            duration,
            row,
            step_input=step_input,
        )

    async def _record_result(
        self,
        claimed: Claimed,
        output: Any,
        error: dict[str, Any] | None,
        attempt_logger: AttemptLogger,
        duration: float,
        policy: RetryPolicy | None,
    ) -> None:
        message = claimed.message

        async def apply(connection: asyncpg.Connection, changes: Changes) -> None:
            execution = await _lock_execution(connection, message.execution_id, changes)
            if execution is None:
                return
            # The execution's lock guards its steps: every writer of a step row takes it first.
            steps = await _read_steps(connection, execution["id"])
            step = steps.get(message.step_id)
            if (
                step is None
                or step["status"] != "running"
                or step["attempts"] != message.attempt
                or step["owner"] != self.worker
            ):
                return  # cancelled, or the lease expired and another worker took over
            await self._settle_attempt(
                connection, changes, message, claimed.step.type, policy, output, error, attempt_logger, duration, step
            )
            if step["status"] != "scheduled":
                graph = await self._graph(connection, execution["workflow_version_id"])
                await self._advance(connection, execution, graph, changes, steps)

        await self._change(message.tenant_id, message.execution_id, apply, fail_on_error=False)

    async def _settle_attempt(
        self,
        connection: asyncpg.Connection,
        changes: Changes,
        message: TaskDispatched,
        step_type: str,
        policy: RetryPolicy | None,
        output: Any,
        error: dict[str, Any] | None,
        attempt_logger: AttemptLogger,
        duration: float,
        row: dict[str, Any],
        *,
        step_input: Any = None,
    ) -> None:
        """Record a finished attempt: its step completes, fails, or waits on a durable timer for the next one.

        The result is written by the change's next statement (see ``Finishes``); ``row`` (the step's row as
        this change sees it) takes the step's new status and result. ``step_input`` is the input of an
        attempt that ran inside this change, not yet stored.
        """
        status = "failed" if error else "completed"
        for level, text, metadata in attempt_logger.records:
            changes.log(
                level,
                text,
                task_id=message.step_execution_id,
                step_id=message.step_id,
                attempt=message.attempt,
                metadata=metadata,
            )
        retry_in = (
            max(
                policy.delay(message.attempt, random.random()),
                min(error.get("retryAfter") or 0.0, policy.max_interval),
            )
            if error and error.get("retryable") and policy and message.attempt < policy.max_attempts
            else None
        )
        summary = f"attempt {message.attempt} {status} in {duration * 1000:.1f} ms"
        if error:
            summary += f": {error['message']}"
        if retry_in is not None:
            summary += f"; attempt {message.attempt + 1} in {retry_in:.1f} s"
        changes.log(
            "ERROR" if error else "INFO",
            summary,
            task_id=message.step_execution_id,
            step_id=message.step_id,
            attempt=message.attempt,
        )
        step_status = status if retry_in is None else "scheduled"  # a retry waits for its next attempt
        changes.finishes.add(
            FinishedAttempt(
                message.step_execution_id,
                message.generation,
                message.attempt,
                status,
                step_status,
                round(duration * 1000),
                error,
                None if retry_in is not None else output,
                step_input,
            )
        )
        row.update(status=step_status, output=None if retry_in is not None else output, error=error, owner=None)
        if retry_in is None:
            changes.events.append(
                NewEvent(
                    "TASK_FAILED" if error else "TASK_COMPLETED",
                    TaskSnapshot(status=status, attempt=message.attempt, output=output, error=error),
                    message.step_id,
                    message.step_execution_id,
                )
            )
            return
        # The step waits for its next attempt on a durable timer, not in this process.
        retry_at = datetime.now(UTC) + timedelta(seconds=retry_in)
        await self._start_timer(connection, changes, message.step_execution_id, "retry", retry_at)
        changes.outcomes.retries.append(step_type)
        changes.events.append(
            NewEvent(
                "TASK_FAILED",
                TaskSnapshot(status="scheduled", attempt=message.attempt, error=error, retry_at=retry_at.isoformat()),
                message.step_id,
                message.step_execution_id,
            )
        )

    async def renew_leases(self) -> None:
        """Extend the leases of the attempts this process is running, and stop those no longer its own.

        Rows locked by a transaction of their execution are skipped this round rather than waited for, so
        renewal never holds a step lock while waiting for another (the execution-first lock order). An
        attempt whose step was cancelled (or taken over after a lost lease) is stopped here when another
        executor made that change.
        """
        if self._running:
            running = list(self._running.values())
            await self._pool.execute(
                "UPDATE step_executions SET lease_expires_at = clock_timestamp() + make_interval(secs => $3) "
                "WHERE id = ANY($1::uuid[]) AND id IN ("  # the keys again: the update finds its rows by them too
                "SELECT id FROM step_executions WHERE id = ANY($1::uuid[]) AND owner = $2 AND status = 'running' "
                "FOR UPDATE SKIP LOCKED)",
                running,
                self.worker,
                self._settings.lease_seconds,
            )
            gone = await self._pool.fetch(
                "SELECT id FROM step_executions WHERE id = ANY($1::uuid[]) "
                "AND (status = 'cancelled' OR (status = 'running' AND owner IS DISTINCT FROM $2))",
                running,
                self.worker,
            )
            self._stop_attempts({row["id"] for row in gone})

    async def close(self) -> None:
        """Release the shared HTTP client (after ``drain``)."""
        await self._http.aclose()

    async def drain(self, grace_seconds: float) -> None:
        """Let running attempts finish for up to ``grace_seconds``, then cancel the rest (leases recover them)."""
        if self._running:
            await asyncio.wait(list(self._running), timeout=grace_seconds)
        for task in list(self._running):
            task.cancel()


async def _read_steps(connection: asyncpg.Connection, execution_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The execution's step rows by step id (read under the execution's lock)."""
    return {
        record["step_id"]: dict(record)
        for record in await connection.fetch(
            "SELECT id, step_id, status, output, error, attempts, generation, owner FROM step_executions "
            "WHERE execution_id = $1",
            execution_id,
        )
    }


def _new_steps(graph: Graph) -> dict[str, dict[str, Any]]:
    """The rows of an execution's steps before they start, by step id (in definition order)."""
    return {
        step.id: {
            "id": uuid7(),
            "step_id": step.id,
            "step_type": step.type,
            "status": "pending",
            "input": None,
            "output": None,
            "error": None,
            "attempts": 0,
            "generation": 0,
            "owner": None,
        }
        for step in graph.definition.steps
    }


async def _lock_and_start(
    connection: asyncpg.Connection,
    message: ExecutionRequested,
    steps: dict[str, dict[str, Any]],
    changes: Changes,
) -> asyncpg.Record | None:
    """Lock the execution and, when it is new and of the requested version, store ``steps`` and start it.

    The row comes back as it was when locked, with ``started`` saying whether this statement started it (a
    retry, a rerun or an execution that is no longer pending is left as it was, for the caller to handle).
    A started execution's status and ``started_at`` (the lock's time) are written by the change's last
    statement (``changes.started_at``), with its event counter: one update of the row instead of two.
    """
    execution = await connection.fetchrow(
        f"""
        WITH execution AS (
            SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 FOR UPDATE
        ), new AS (
            SELECT id, tenant_id FROM execution
            WHERE status = 'pending' AND started_at IS NULL AND rerun_of IS NULL AND workflow_version_id = $2
        ), created AS (
            INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status)
            SELECT s.id, n.tenant_id, n.id, s.step_id, s.position, s.step_type, 'pending'
            FROM new n, unnest($3::uuid[], $4::text[], $5::int[], $6::text[]) AS s(id, step_id, position, step_type)
        )
        SELECT *, EXISTS (SELECT FROM new) AS started, clock_timestamp() AS starting_at FROM execution
        """,
        message.execution_id,
        message.workflow_version_id,
        [row["id"] for row in steps.values()],
        list(steps),
        list(range(len(steps))),
        [row["step_type"] for row in steps.values()],
    )
    if execution is not None:
        changes.last_sequence = execution["last_event_sequence"]
        if execution["started"]:
            changes.started_at = execution["starting_at"]
    return execution


async def _lock_execution(
    connection: asyncpg.Connection, execution_id: uuid.UUID, changes: Changes
) -> asyncpg.Record | None:
    """Lock the execution row (before any of its steps) and note its event sequence for ``changes``."""
    execution = await connection.fetchrow(
        f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1 FOR UPDATE", execution_id
    )
    if execution is not None:
        changes.last_sequence = execution["last_event_sequence"]
    return execution


def _check_storable(value: Any) -> None:
    """Refuse a rendered value that cannot be stored as JSON, blaming the step whose input it is.

    Raises:
        TemplateError: the value is not JSON (e.g. ``range(3)``) or holds a NUL character.
    """
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, ValueError) as err:
        raise TemplateError(f"the rendered input is not JSON: {err}") from err
    if b"\\u0000" in encoded:
        raise TemplateError("the rendered input holds a NUL character (\\u0000), which cannot be stored")


def _sleep_until(step: StepDefinition, context: dict[str, Any]) -> datetime:
    """When a sleep step wakes: now plus its duration, or its rendered ``until`` timestamp.

    Raises:
        TemplateError: ``until`` does not render.
        ValueError: ``until`` is not an ISO 8601 timestamp.
    """
    if step.duration is not None:
        return datetime.now(UTC) + timedelta(seconds=parse_duration(step.duration))
    rendered = render(step.until, context)
    until = rendered if isinstance(rendered, datetime) else datetime.fromisoformat(str(rendered))
    return until if until.tzinfo else until.replace(tzinfo=UTC)


def _template_context(execution: asyncpg.Record, steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "input": execution["input"],
        "steps": {step_id: {"output": step["output"], "status": step["status"]} for step_id, step in steps.items()},
        "execution": {
            "id": str(execution["id"]),
            "workflowRef": execution["workflow_ref"],
            "workflowVersion": execution["workflow_version"],
        },
    }
