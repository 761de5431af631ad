"""Step executions: the one builder of new step rows and of a next attempt's TaskDispatched; steps found stalled."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import asyncpg
import msgspec

from flowline.db.sql import bind, typed
from flowline.domain.definitions import StepDefinition
from flowline.messages import TaskDispatched
from flowline.runtime.ids import uuid7

# A new execution's step rows (arrays of one element per step, in definition order) as they stand: pending,
# or already as the change that starts the execution left them. Timestamps as a change writes them: statement
# time for what happened in the change, and a running step's lease from the clock. A step that finished
# without running (skipped) has no start. ``{guard}`` says when the rows go in at all.
_INSERT_STEPS = """
    inserted_steps AS (
        INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status, input,
            output, error, attempts, owner, lease_expires_at, scheduled_at, started_at, completed_at)
        SELECT s.id, :tenant_id, :execution_id, s.step_id, s.position, s.step_type, s.status, s.input, s.output,
            s.error, s.attempts, CASE WHEN s.status = 'running' THEN :worker END,
            CASE WHEN s.status = 'running' THEN clock_timestamp() + make_interval(secs => :lease_seconds) END,
            CASE WHEN s.status IN ('scheduled', 'running') OR s.attempts > 0 THEN statement_timestamp() END,
            CASE WHEN s.status = 'running' OR s.attempts > 0 THEN statement_timestamp() END,
            CASE WHEN s.status IN ('completed', 'failed', 'skipped') THEN statement_timestamp() END
        FROM unnest(:step_ids::uuid[], :step_step_ids::text[], :step_positions::int[], :step_types::text[],
            :step_statuses::text[], :step_inputs::jsonb[], :step_outputs::jsonb[], :step_errors::jsonb[],
            :step_attempts::int[]) AS s(id, step_id, position, step_type, status, input, output, error, attempts)
        WHERE {guard}
    )"""


# What the engine reads of a step: the fields of ``StepRow``.
STEP_COLUMNS = "id, step_id, step_type, status, input, output, error, attempts, generation, owner"
# A finished step's duration, from its start (NULL when it never started), for RETURNING clauses.
_SECONDS = "extract(epoch FROM completed_at - started_at)::float8 AS seconds"


class StepRow(msgspec.Struct, kw_only=True):
    """A step execution as a change of the engine works on it: read under its execution's lock, or new.

    Mutable: the change keeps it as it leaves the step, so that what it decides next sees its own decisions.
    """

    id: uuid.UUID
    step_id: str
    step_type: str
    status: str = "pending"
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    generation: int = 0
    owner: str | None = None


class FinishedStep(msgspec.Struct, frozen=True, kw_only=True):
    """A step that just ended: its type, and seconds since it started (None when it never started)."""

    id: uuid.UUID
    step_id: str
    step_type: str
    seconds: float | None


class ReusableStep(msgspec.Struct, frozen=True, kw_only=True):
    """A finished step of an execution that a rerun of it may reuse."""

    step_id: str
    status: str
    output: Any


def new_steps(definitions: Sequence[StepDefinition]) -> dict[str, StepRow]:
    """The rows of an execution's steps before they start, by step id (in definition order)."""
    return {step.id: StepRow(id=uuid7(), step_id=step.id, step_type=step.type) for step in definitions}


@functools.cache
def inserting_steps(guard: str = "true") -> str:
    """The CTE ``inserted_steps`` that inserts the rows of ``steps_params``, when ``guard`` (SQL) holds.

    Its parameters besides the rows' are ``tenant_id``, ``execution_id``, ``worker`` (a running step's owner)
    and ``lease_seconds``.
    """
    return _INSERT_STEPS.replace("{guard}", guard)


def steps_params(steps: dict[str, StepRow]) -> dict[str, list[Any]]:
    """The parameters of ``inserting_steps`` for rows made by ``new_steps`` (and changed since)."""
    rows = steps.values()
    return {
        "step_ids": [row.id for row in rows],
        "step_step_ids": list(steps),
        "step_positions": list(range(len(steps))),
        "step_types": [row.step_type for row in rows],
        "step_statuses": [row.status for row in rows],
        "step_inputs": [row.input for row in rows],
        "step_outputs": [row.output for row in rows],
        "step_errors": [row.error for row in rows],
        "step_attempts": [row.attempts for row in rows],
    }


async def read_steps(connection: asyncpg.Connection, execution_id: uuid.UUID) -> dict[str, StepRow]:
    """The execution's step rows by step id (read under the execution's lock)."""
    records = await connection.fetch(
        f"SELECT {STEP_COLUMNS} FROM step_executions WHERE execution_id = $1", execution_id
    )
    return {record["step_id"]: StepRow(**record) for record in records}


async def lock_step(
    connection: asyncpg.Connection, execution_id: uuid.UUID, step_execution_id: uuid.UUID
) -> StepRow | None:
    """Lock one step of an execution (locked first: the lock order of every writer); None if it is not one of its."""
    record = await connection.fetchrow(
        f"SELECT {STEP_COLUMNS} FROM step_executions WHERE id = $1 AND execution_id = $2 FOR UPDATE",
        step_execution_id,
        execution_id,
    )
    return None if record is None else StepRow(**record)


async def lock_step_of(connection: asyncpg.Connection, execution_id: uuid.UUID, step_id: str) -> StepRow | None:
    """Lock the step ``step_id`` of an execution (locked first)."""
    record = await connection.fetchrow(
        f"SELECT {STEP_COLUMNS} FROM step_executions WHERE execution_id = $1 AND step_id = $2 FOR UPDATE",
        execution_id,
        step_id,
    )
    return None if record is None else StepRow(**record)


async def read_step_running_child(
    connection: asyncpg.Connection, parent_id: uuid.UUID, child_id: uuid.UUID
) -> StepRow | None:
    """The running workflow step of ``parent_id`` whose current child is ``child_id``, if any."""
    record = await connection.fetchrow(
        "SELECT s.id, s.step_id, s.step_type, s.status, s.input, s.output, s.error, s.attempts, s.generation, "
        "s.owner FROM executions c JOIN step_executions s "
        "ON s.execution_id = c.parent_execution_id AND s.step_id = c.parent_step_id "
        "WHERE c.id = $1 AND c.parent_execution_id = $2 AND s.status = 'running' "
        "AND s.input ->> 'childExecutionId' = $3",
        child_id,
        parent_id,
        str(child_id),
    )
    return None if record is None else StepRow(**record)


async def list_stranded_steps(connection: asyncpg.Connection, execution_id: uuid.UUID) -> list[StepRow]:
    """The execution's scheduled steps that wait on no timer: nothing else will start them."""
    return typed(
        await connection.fetch(
            f"SELECT {STEP_COLUMNS} FROM step_executions s "
            "WHERE s.execution_id = $1 AND s.status = 'scheduled' AND NOT EXISTS ("
            "SELECT 1 FROM timers t WHERE t.execution_id = $1 AND t.step_execution_id = s.id "
            "AND t.status = 'pending')",
            execution_id,
        ),
        StepRow,
    )


async def list_reusable_steps(connection: asyncpg.Connection, execution_id: uuid.UUID) -> list[ReusableStep]:
    """The completed and skipped steps of an execution, which a rerun of it may reuse."""
    return typed(
        await connection.fetch(
            "SELECT step_id, status, output FROM step_executions "
            "WHERE execution_id = $1 AND status IN ('completed', 'skipped')",
            execution_id,
        ),
        ReusableStep,
    )


class StepStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one step of an execution stands."""

    step_id: str
    status: str


async def list_step_statuses(connection: asyncpg.Connection, execution_id: uuid.UUID) -> list[StepStatus]:
    """The status of every step of an execution, in definition order."""
    return typed(
        await connection.fetch(
            *bind(
                "SELECT step_id, status FROM step_executions WHERE execution_id = :execution_id ORDER BY position",
                execution_id=execution_id,
            )
        ),
        StepStatus,
    )


async def schedule_step(connection: asyncpg.Connection, step_execution_id: uuid.UUID, step_input: Any) -> None:
    """Mark a step scheduled with its rendered input, for an attempt dispatched through the tasks topic."""
    await connection.execute(
        "UPDATE step_executions SET status = 'scheduled', input = $2, scheduled_at = clock_timestamp() WHERE id = $1",
        step_execution_id,
        step_input,
    )


async def start_step(connection: asyncpg.Connection, step_execution_id: uuid.UUID, step_input: Any) -> None:
    """Mark a step that runs without an attempt (a sleep, a wait) running, with what it waits for as input."""
    await connection.execute(
        "UPDATE step_executions SET status = 'running', input = $2, scheduled_at = clock_timestamp(), "
        "started_at = clock_timestamp() WHERE id = $1",
        step_execution_id,
        step_input,
    )


async def start_child_step(
    connection: asyncpg.Connection, step_execution_id: uuid.UUID, step_input: Any, attempts: int
) -> None:
    """Mark a workflow step running its ``attempts``-th child (whose id its input holds)."""
    await connection.execute(
        "UPDATE step_executions SET status = 'running', input = $2, attempts = $3, "
        "scheduled_at = coalesce(scheduled_at, clock_timestamp()), "
        "started_at = coalesce(started_at, clock_timestamp()) WHERE id = $1",
        step_execution_id,
        step_input,
        attempts,
    )


async def reschedule_step(connection: asyncpg.Connection, step_execution_id: uuid.UUID, error: dict[str, Any]) -> None:
    """Mark a step whose child failed scheduled for another, after a retry timer."""
    await connection.execute(
        "UPDATE step_executions SET status = 'scheduled', error = $2 WHERE id = $1", step_execution_id, error
    )


async def finish_step(
    connection: asyncpg.Connection,
    step_execution_id: uuid.UUID,
    status: str,
    *,
    output: Any = None,
    error: dict[str, Any] | None = None,
) -> FinishedStep:
    """End a step without an attempt (completed, failed or skipped), with its output or error."""
    record = await connection.fetchrow(
        "UPDATE step_executions SET status = $2, output = $3, error = $4, completed_at = clock_timestamp() "
        f"WHERE id = $1 RETURNING id, step_id, step_type, {_SECONDS}",
        step_execution_id,
        status,
        output,
        error,
    )
    return FinishedStep(**record)


async def cancel_unfinished_steps(connection: asyncpg.Connection, execution_id: uuid.UUID) -> list[FinishedStep]:
    """Cancel every step of an execution that has not finished, releasing running ones' leases."""
    return typed(
        await connection.fetch(
            "UPDATE step_executions SET status = 'cancelled', completed_at = clock_timestamp(), owner = NULL, "
            "lease_expires_at = NULL WHERE execution_id = $1 AND status IN ('pending', 'scheduled', 'running') "
            f"RETURNING id, step_id, step_type, {_SECONDS}",
            execution_id,
        ),
        FinishedStep,
    )


class StepOfAttempts(Protocol):
    """A step row as dispatching its next attempt reads it (``StepRow``, ``ScheduledStep``)."""

    # Read-only, so that the frozen rows fit too; each is the row's field of that name.
    @property
    def id(self) -> uuid.UUID: ...  # noqa: D102
    @property
    def step_id(self) -> str: ...  # noqa: D102
    @property
    def generation(self) -> int: ...  # noqa: D102
    @property
    def attempts(self) -> int: ...  # noqa: D102


def next_attempt_dispatch(tenant_id: uuid.UUID, execution_id: uuid.UUID, step: StepOfAttempts) -> TaskDispatched:
    """The message that dispatches the next attempt of ``step`` (``attempts`` ran before it) of an execution."""
    return TaskDispatched(
        tenant_id=tenant_id,
        execution_id=execution_id,
        step_execution_id=step.id,
        step_id=step.step_id,
        generation=step.generation,
        attempt=step.attempts + 1,
    )


class ScheduledStep(msgspec.Struct, frozen=True, kw_only=True):
    """A step waiting for its next attempt (``attempts`` ran before it)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    execution_id: uuid.UUID
    step_id: str
    generation: int
    attempts: int

    def dispatched(self) -> TaskDispatched:
        """The message that dispatches the step's next attempt."""
        return next_attempt_dispatch(self.tenant_id, self.execution_id, self)


async def list_undispatched_steps(
    connection: asyncpg.Connection, *, older_than: float, limit: int
) -> list[ScheduledStep]:
    """Steps scheduled over ``older_than`` seconds ago and not waiting on a retry timer: their dispatch went missing."""
    return typed(
        await connection.fetch(
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
            older_than,
            limit,
        ),
        ScheduledStep,
    )


class ExpiredStep(ScheduledStep, frozen=True, kw_only=True):
    """A running step whose lease expired: the worker that owned it stopped answering."""

    owner: str | None


class ExpiredLease(msgspec.Struct, frozen=True, kw_only=True):
    """A running step whose lease has run out, as found before locking it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    execution_id: uuid.UUID


async def list_expired_leases(connection: asyncpg.Connection | asyncpg.Pool, *, limit: int) -> list[ExpiredLease]:
    """Running steps whose lease has expired, the longest expired first."""
    records = await connection.fetch(
        "SELECT id, tenant_id, execution_id FROM step_executions "
        "WHERE status = 'running' AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT $1",
        limit,
    )
    return typed(records, ExpiredLease)


async def lock_expired_step(connection: asyncpg.Connection, step_execution_id: uuid.UUID) -> ExpiredStep | None:
    """Lock a running step whose lease has expired (after its execution: the lock order), if it still is one."""
    record = await connection.fetchrow(
        "SELECT id, tenant_id, execution_id, step_id, generation, attempts, owner FROM step_executions "
        "WHERE id = $1 AND status = 'running' AND lease_expires_at < now() FOR UPDATE",
        step_execution_id,
    )
    return None if record is None else ExpiredStep(**record)


async def fail_expired_attempt(connection: asyncpg.Connection, step: ExpiredStep, error: dict[str, Any]) -> None:
    """Fail the attempt of a step whose lease expired."""
    await connection.execute(
        "UPDATE task_attempts SET status = 'failed', finished_at = now(), error = $4 "
        "WHERE step_execution_id = $1 AND generation = $2 AND number = $3",
        step.id,
        step.generation,
        step.attempts,
        error,
    )


async def reschedule_expired_step(connection: asyncpg.Connection, step: ExpiredStep) -> None:
    """Schedule a step whose lease expired for another attempt."""
    await connection.execute(
        "UPDATE step_executions SET status = 'scheduled', owner = NULL, lease_expires_at = NULL WHERE id = $1",
        step.id,
    )


async def fail_expired_step(connection: asyncpg.Connection, step: ExpiredStep, error: dict[str, Any]) -> None:
    """Fail a step whose lease expired once too often."""
    await connection.execute(
        "UPDATE step_executions SET status = 'failed', error = $2, owner = NULL, lease_expires_at = NULL, "
        "completed_at = now() WHERE id = $1",
        step.id,
        error,
    )
