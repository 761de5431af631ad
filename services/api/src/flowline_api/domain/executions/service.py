"""Execution use cases: start, read, list, history, relations; settle promises."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

import asyncpg
import msgspec
from flowline.db.audit import Actor, record_audit
from flowline.db.execution_reads import (
    ExecutionFilters,
    ExecutionSort,
    count_executions,
    count_step_statuses,
    count_step_statuses_in_spans,
    execution_exists,
    first_hidden_execution,
    list_child_executions,
    list_execution_events,
    list_executions,
    list_named_step_executions,
    list_step_executions,
    list_step_executions_in,
    list_task_attempts,
    read_event_sequence,
    read_execution,
    read_step_execution,
    resolve_search,
)
from flowline.domain.credentials import Principal
from flowline.domain.starting import (
    ExecutionInserts,
    StartedExecution,
    WorkflowCache,
    caller_started_by,
    start_execution,
)
from flowline.errors import ClientError, Conflict, NotFound
from flowline.kafka.outbox import OutboxPublisher, enqueue, outgoing
from flowline.messages import PromiseSettled
from flowline.settings import Settings, Topics
from flowline_schemas.executions import (
    AttemptList,
    ChildExecution,
    ChildList,
    EventList,
    Execution,
    ExecutionEvent,
    ExecutionPage,
    ExecutionSummary,
    PromiseSettlement,
    StepExecution,
    StepList,
    Task,
    TaskAttempt,
)
from litestar import Request
from litestar.datastructures import State
from litestar.params import FromPath

from flowline_api.dependencies import provide_actor, provide_tenant_id
from flowline_api.domain.executions.filters import owner_filter
from flowline_api.domain.executions.schemas import STEP_STATUSES
from flowline_api.domain.workflows.schemas import ExecuteRequest
from flowline_api.pagination import decode_cursor, encode_cursor

SORT_COLUMNS: dict[str, ExecutionSort] = {"createdAt": "created_at", "completedAt": "completed_at"}


def _optional_id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


class ExecutionService:
    """Starts and reads executions, their steps, events, children and attempts; settles promises."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        workflows: WorkflowCache,
        inserts: ExecutionInserts,
    ) -> None:
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._workflows = workflows
        self._inserts = inserts

    async def settle_promise(
        self,
        tenant_id: uuid.UUID,
        execution_id: uuid.UUID,
        name: str,
        *,
        actor: Actor,
        value: Any = None,
        error: dict[str, Any] | None = None,
    ) -> PromiseSettlement:
        """Resolve (``error`` None) or reject a pending promise and tell the engine.

        Raises:
            NotFound: no such execution in this tenant, or it has no promise ``name``.
            Conflict: the promise was already resolved, rejected or timed out.
        """
        status = "rejected" if error is not None else "resolved"
        async with self._pool.acquire() as connection, connection.transaction():
            promise = await connection.fetchrow(
                "SELECT p.id, p.status, p.step_execution_id FROM promises p "
                "JOIN executions e ON e.id = p.execution_id AND e.tenant_id = $1 "
                "WHERE p.execution_id = $2 AND p.name = $3 FOR UPDATE OF p",
                tenant_id,
                execution_id,
                name,
            )
            if promise is None:
                if not await connection.fetchval(
                    "SELECT 1 FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
                ):
                    raise NotFound(f"execution {execution_id} does not exist")
                raise NotFound(f"execution {execution_id} has no promise {name!r}")
            if promise["status"] != "pending":
                raise Conflict(f"promise {name!r} is already {promise['status']}")
            settled_at = await connection.fetchval(
                "UPDATE promises SET status = $2, value = $3, error = $4, settled_at = now() WHERE id = $1 "
                "RETURNING settled_at",
                promise["id"],
                status,
                value,
                error,
            )
            rows = await enqueue(
                connection,
                [
                    outgoing(
                        self._topics.control,
                        PromiseSettled(
                            tenant_id=tenant_id,
                            execution_id=execution_id,
                            promise_id=promise["id"],
                            step_execution_id=promise["step_execution_id"],
                        ),
                    )
                ],
            )
            await record_audit(
                connection,
                tenant_id=tenant_id,
                entity_type="execution",
                entity_id=str(execution_id),
                action=f"{status[:-1]} promise",  # "resolve promise", "reject promise"
                actor=actor,
                changes={"promise": {"before": "pending", "after": status}, "name": {"before": None, "after": name}},
            )
        await self._outbox.publish(rows)
        return PromiseSettlement(execution_id=str(execution_id), promise=name, status=status, settled_at=settled_at)

    async def start(
        self, tenant_id: uuid.UUID, ref: str, request: ExecuteRequest, caller: Principal, actor: Actor
    ) -> StartedExecution:
        """Store a pending execution of workflow ``ref`` and publish its ExecutionRequested after the commit.

        Raises:
            NotFound: unknown workflow or version.
            Conflict: the workflow is disabled, or the idempotency key started another workflow or an execution
                the caller may not see (another principal's: its id is not handed out).
            ValidationFailed: the input does not match the workflow's input schema.
        """
        # No transaction: the execution is written in one statement (with those of concurrent starts), and a
        # repeated key's checks only read. No connection is held while that statement waits for its turn.
        started = await start_execution(
            self._pool,
            self._topics,
            tenant_id=tenant_id,
            workflow_ref=ref,
            version=request.version,
            execution_input=request.input,
            idempotency_key=request.idempotency_key,
            triggered_by="api",
            started_by=caller_started_by(caller.subject),
            owned_by=actor.principal,
            metadata=request.metadata,
            tags=request.tags,
            audit=actor,  # the start's audit row, written with the execution
            workflows=self._workflows,
            inserting=self._inserts.insert,
        )
        if (
            not started.created
            and (owner := owner_filter(caller)) is not None
            and await first_hidden_execution(self._pool, tenant_id, [started.id], owner)
        ):
            raise Conflict(f"idempotency key {request.idempotency_key!r} is already used by another principal")
        await self._outbox.publish(started.outbox)
        return started

    async def read(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, *, with_steps: bool = True) -> Execution:
        """One execution with its steps, in definition order, and how many steps are in each status.

        ``with_steps=False`` leaves ``steps`` empty and only counts them in the database: a page of an execution
        with thousands of steps reads those it shows (``step_runs``, ``steps_in``), not all.

        Raises:
            NotFound: no such execution in this tenant.
        """
        counts = dict.fromkeys(STEP_STATUSES, 0)
        async with self._pool.acquire() as connection:
            record = await read_execution(connection, tenant_id, execution_id)
            if with_steps:
                steps = await list_step_executions(connection, tenant_id, execution_id)
                counts.update(Counter(step["status"] for step in steps))
            else:
                steps = []
                counts.update(await count_step_statuses(connection, tenant_id, execution_id))
        return Execution(
            **msgspec.structs.asdict(to_summary(record)),
            input=record["input"],
            output=record["output"],
            step_counts=counts,
            steps=[to_step(step) for step in steps],
        )

    async def step_runs(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, step_ids: Sequence[str]
    ) -> list[StepExecution]:
        """The step executions of these steps of an execution (those it reached), in definition order."""
        records = await list_named_step_executions(self._pool, tenant_id, execution_id, step_ids)
        return [to_step(record) for record in records]

    async def event_sequence(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> int:
        """The sequence of the execution's last event: how far a view read after it is current."""
        return await read_event_sequence(self._pool, tenant_id, execution_id)

    async def step_counts_in_spans(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, spans: Sequence[tuple[int, int, str]]
    ) -> dict[str, dict[str, int]]:
        """Per key, how many step executions are in each status.

        ``spans`` are ``(first, last, key)``: the steps at those places in the definition count under ``key`` (a
        fan-out's, or a step's own id).
        """
        return await count_step_statuses_in_spans(self._pool, tenant_id, execution_id, spans)

    async def steps_in(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, statuses: Sequence[str], *, after: int, limit: int
    ) -> tuple[list[StepExecution], int | None]:
        """A page of an execution's step executions in one of ``statuses``, and where the next page starts.

        The page is in definition order after the position ``after``; the second value is the position the
        next page starts after (None: this is the last page).
        """
        records = await list_step_executions_in(
            self._pool, tenant_id, execution_id, statuses=statuses, after_position=after, limit=limit + 1
        )
        following = records[limit - 1]["position"] if len(records) > limit else None
        return [to_step(record) for record in records[:limit]], following

    async def list(
        self,
        tenant_id: uuid.UUID,
        filters: ExecutionFilters,
        *,
        sort: str,
        order: Literal["asc", "desc"],
        limit: int,
        offset: int,
        cursor: str | None,
    ) -> ExecutionPage:
        """One page of executions, newest first unless asked otherwise.

        The cursor holds the sort and the key of the last item, so the next page starts right after it even
        while executions are added. Up to 1,000 matches ``total`` is exact; past that it is an estimate.

        Raises:
            ClientError: a cursor that is not from this list or was made for another sort.
        """
        column = SORT_COLUMNS[sort]
        after: tuple[datetime | None, uuid.UUID] | None = None
        if cursor is not None:
            cursor_sort, cursor_order, value, last_id = decode_cursor(cursor, 4)
            if (cursor_sort, cursor_order) != (sort, order):
                raise ClientError(f"cursor: made for sort={cursor_sort}&order={cursor_order}, not {sort}&{order}")
            try:
                if not isinstance(last_id, str) or not (value is None or isinstance(value, str)):
                    raise TypeError(value)
                after = (None if value is None else datetime.fromisoformat(value), uuid.UUID(last_id))
            except (TypeError, ValueError) as err:
                raise ClientError("cursor: not a cursor returned by this list") from err
        async with self._pool.acquire() as connection:
            filters = await resolve_search(connection, tenant_id, filters)
            records = await list_executions(
                connection,
                tenant_id,
                filters,
                sort=column,
                descending=order == "desc",
                limit=limit + 1,
                offset=offset,
                after=after,
            )
            if offset == 0 and cursor is None and len(records) <= limit:
                total, exact = len(records), True  # the whole list fits on this page: no need to count
            else:
                total, exact = await count_executions(connection, tenant_id, filters)
        next_cursor = None
        if len(records) > limit:
            last = records[limit - 1]
            value = last[column]
            next_cursor = encode_cursor([sort, order, None if value is None else value.isoformat(), str(last["id"])])
        return ExecutionPage(
            items=[to_summary(record) for record in records[:limit]],
            total=total,
            total_exact=exact,
            limit=limit,
            offset=offset,
            next_cursor=next_cursor,
        )

    async def steps(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> StepList:
        """Every step execution of an execution, in definition order.

        Raises:
            NotFound: no such execution in this tenant.
        """
        async with self._pool.acquire() as connection:
            await execution_exists(connection, tenant_id, execution_id)
            steps = await list_step_executions(connection, tenant_id, execution_id)
        return StepList(steps=[to_step(step) for step in steps])

    async def events(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, *, since_sequence: int, limit: int
    ) -> EventList:
        """Up to ``limit`` events after ``since_sequence``, in order.

        Raises:
            NotFound: no such execution in this tenant.
        """
        async with self._pool.acquire() as connection:
            await execution_exists(connection, tenant_id, execution_id)
            records = await list_execution_events(
                connection, execution_id, since_sequence=since_sequence, limit=limit + 1
            )
        page = records[:limit]
        return EventList(
            events=[
                ExecutionEvent(
                    sequence=record["sequence"],
                    event=record["event_type"],
                    step_id=record["step_id"],
                    task_id=_optional_id(record["task_id"]),
                    data=record["data"],
                    occurred_at=record["occurred_at"],
                )
                for record in page
            ],
            next_sequence=page[-1]["sequence"] if page else since_sequence,
            has_more=len(records) > limit,
        )

    async def children(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, caller: Principal) -> ChildList:
        """The executions the workflow steps of an execution started that ``caller`` may see, oldest first.

        A child of another principal, of a workflow that is not public, is left out (an admin sees all).

        Raises:
            NotFound: no such execution in this tenant.
        """
        async with self._pool.acquire() as connection:
            await execution_exists(connection, tenant_id, execution_id)
            records = await list_child_executions(connection, tenant_id, execution_id, owner_filter(caller))
        return ChildList(
            children=[
                ChildExecution(
                    child_workflow_execution_id=str(record["id"]),
                    kind=record["workflow_ref"],
                    parent_step_id=record["parent_step_id"],
                    status=record["status"],
                    created_at=record["created_at"],
                    completed_at=record["completed_at"],
                )
                for record in records
            ]
        )

    async def attempts(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, task_id: uuid.UUID) -> AttemptList:
        """The attempts of one task of an execution, oldest first.

        Raises:
            NotFound: no such execution in this tenant, or the task is not one of its steps.
        """
        records = await list_task_attempts(self._pool, tenant_id, execution_id, task_id)
        return AttemptList(
            attempts=[
                TaskAttempt(
                    attempt=record["number"],
                    generation=record["generation"],
                    status=record["status"],
                    started_at=record["started_at"],
                    finished_at=record["finished_at"],
                    duration_ms=record["duration_ms"],
                    worker_id=record["worker"],
                    error=record["error"],
                    input=record["input"],
                    output=record["output"],
                )
                for record in records
            ]
        )

    async def task(self, tenant_id: uuid.UUID, task_id: uuid.UUID) -> Task:
        """One step execution, addressed by its task id.

        Raises:
            NotFound: no such task in this tenant.
        """
        record = await read_step_execution(self._pool, tenant_id, task_id)
        return Task(**msgspec.structs.asdict(to_step(record)), workflow_ref=record["workflow_ref"])


def _duration_ms(started_at: datetime | None, finished_at: datetime | None) -> int | None:
    if started_at is None or finished_at is None:
        return None
    return round((finished_at - started_at).total_seconds() * 1000)


def to_summary(record: asyncpg.Record) -> ExecutionSummary:
    """The list item for an execution row."""
    return ExecutionSummary(
        id=str(record["id"]),
        workflow_ref=record["workflow_ref"],
        workflow_version=record["workflow_version"],
        status=record["status"],
        error=record["error"],
        triggered_by=record["triggered_by"],
        started_by=record["started_by"],
        parent_execution_id=_optional_id(record["parent_execution_id"]),
        parent_step_id=record["parent_step_id"],
        root_execution_id=str(record["root_execution_id"]),
        idempotency_key=record["idempotency_key"],
        metadata=record["metadata"],
        tags=list(record["tags"]),
        created_at=record["created_at"],
        started_at=record["started_at"],
        completed_at=record["completed_at"],
        cancelled_at=record["cancelled_at"],
        cancelled_by=record["cancelled_by"],
        duration_ms=_duration_ms(record["started_at"], record["completed_at"]),
        rerun_of=_optional_id(record["rerun_of"]),
        schedule_id=_optional_id(record["schedule_id"]),
        scheduled_for=record["scheduled_for"],
    )


def to_step(record: asyncpg.Record) -> StepExecution:
    """The response body for a step execution row."""
    return StepExecution(
        task_id=str(record["id"]),
        execution_id=str(record["execution_id"]),
        step_id=record["step_id"],
        type=record["step_type"],
        status=record["status"],
        generation=record["generation"],
        attempts=record["attempts"],
        input=record["input"],
        output=record["output"],
        error=record["error"],
        created_at=record["created_at"],
        scheduled_at=record["scheduled_at"],
        started_at=record["started_at"],
        completed_at=record["completed_at"],
        duration_ms=_duration_ms(record["started_at"], record["completed_at"]),
    )


def provide_execution_service(state: State) -> ExecutionService:
    """An execution service for this request, sharing the app's cache of started workflows and its inserts.

    It reads the pool, the outbox and the settings from the app's state rather than naming their providers:
    Litestar resolves a route's dependencies of one depth concurrently, a task each (see ``provide_start``).
    """
    settings: Settings = state.settings
    workflows: WorkflowCache = state.started_workflows
    inserts: ExecutionInserts = state.execution_inserts
    return ExecutionService(state.pool, state.outbox, settings.topics, workflows, inserts)


class Start(NamedTuple):
    """What starting an execution needs from the request: its tenant, the service, the caller and the actor."""

    tenant_id: uuid.UUID
    service: ExecutionService
    caller: Principal
    actor: Actor


async def provide_start(tenant: FromPath[str], state: State, request: Request[Principal, Any, Any]) -> Start:
    """The start route's one dependency.

    Litestar resolves a route's dependencies of one depth concurrently, in an anyio task group with a task
    each; for the six of a start (pool, outbox, settings, tenant, caller, actor), spawning and reaping those
    tasks was about 15 % of the api's CPU per start (py-spy, docs/performance.md §10.3). One resolves inline.
    """
    return Start(
        tenant_id=await provide_tenant_id(tenant, state, request),
        service=provide_execution_service(state),
        caller=request.user,
        actor=provide_actor(request),
    )
