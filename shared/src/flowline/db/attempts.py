"""Task attempts: started under a lease, renewed, cancelled, and finished with their steps by pieces of SQL.

The pieces are CTEs that the statement a change runs anyway carries (see ``flowline.db.sql``), so that
starting and finishing attempts cost no round trip of their own: the executor's hot path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
import msgspec

from flowline.db.sql import bind
from flowline.runtime.ids import uuid7

# The finished attempts (arrays of one element per attempt) of the change's execution, on its worker. An
# attempt that started here before this change already has its row (the upsert closes it); one that ran
# inside this change (an instant action) gets its row now. The finished steps return their type, new status
# and duration since their start. They finished before the statement that carries them began, so its start
# is their time: a step that statement starts (clock_timestamp(), in a CTE PostgreSQL may run before these)
# never seems to start before its needs completed.
FINISHING_ATTEMPTS = """
finishing AS (
    SELECT * FROM unnest(:finished_step_ids::uuid[], :finished_generations::int[], :finished_numbers::int[],
        :finished_statuses::text[], :finished_step_statuses::text[], :finished_durations_ms::int[],
        :finished_errors::jsonb[], :finished_outputs::jsonb[], :finished_inputs::jsonb[],
        :finished_attempt_ids::uuid[])
        AS f(step_execution_id, generation, number, status, step_status, duration_ms, error, output, input, attempt_id)
), finished_attempts AS (
    INSERT INTO task_attempts AS a (id, tenant_id, step_execution_id, execution_id, generation, number, status,
        worker, started_at, finished_at, duration_ms, error, input, output)
    SELECT attempt_id, :tenant_id, step_execution_id, :execution_id, generation, number, status, :worker,
        statement_timestamp(), statement_timestamp(), duration_ms, error, input, output
    FROM finishing
    ON CONFLICT (step_execution_id, generation, number) DO UPDATE SET status = excluded.status,
        finished_at = excluded.finished_at, duration_ms = excluded.duration_ms, error = excluded.error,
        input = coalesce(excluded.input, a.input), output = excluded.output
), finished_steps AS (
    UPDATE step_executions s SET status = f.step_status, output = f.output, error = f.error, attempts = f.number,
        input = coalesce(f.input, s.input), owner = NULL, lease_expires_at = NULL,
        scheduled_at = coalesce(s.scheduled_at, statement_timestamp()),
        started_at = coalesce(s.started_at, statement_timestamp()),
        completed_at = CASE WHEN f.step_status = 'scheduled' THEN NULL ELSE statement_timestamp() END
    FROM finishing f
    -- The execution too: its steps are found through its index (execution_id, step_id). The join alone is
    -- planned from statistics, and a generic plan made while the table was young scanned all its rows.
    WHERE s.execution_id = :execution_id AND s.id = f.step_execution_id
    RETURNING s.step_type, s.status, extract(epoch FROM s.completed_at - s.started_at)::float8 AS seconds
)"""
# What a statement carrying ``FINISHING_ATTEMPTS`` selects to hand back the finished steps.
FINISHED_STEPS = "SELECT step_type, status AS step_status, seconds FROM finished_steps"
# The pending results alone, before a statement that does not carry them.
_FINISHED_ALONE = f"WITH {FINISHING_ATTEMPTS} {FINISHED_STEPS}"


# A step's attempt starts under the worker's lease, with its attempt row.
STARTING_ATTEMPT = """
    started AS (
        UPDATE step_executions SET status = 'running', attempts = :attempt, owner = :worker, input = :input,
            lease_expires_at = clock_timestamp() + make_interval(secs => :lease_seconds),
            scheduled_at = coalesce(scheduled_at, clock_timestamp()),
            started_at = coalesce(started_at, clock_timestamp())
        WHERE id = :step_execution_id
    ), attempt AS (
        INSERT INTO task_attempts (id, tenant_id, step_execution_id, execution_id, generation, number, status,
            worker, input)
        VALUES (:attempt_id, :tenant_id, :step_execution_id, :execution_id, :generation, :attempt, 'running',
            :worker, :input)
        ON CONFLICT (step_execution_id, generation, number) DO NOTHING
    )"""
# The attempts of a new execution's steps (ran or started in the change that starts it), inserted with them
# once its ``sequenced`` CTE moved the counter: finished ones closed, running ones open.
INSERTING_NEW_ATTEMPTS = """
    attempted AS (
        INSERT INTO task_attempts (id, tenant_id, step_execution_id, execution_id, generation, number, status,
            worker, started_at, finished_at, duration_ms, error, input, output)
        SELECT a.id, :tenant_id, a.step_execution_id, :execution_id, a.generation, a.number, a.status, :worker,
            statement_timestamp(), CASE WHEN a.status <> 'running' THEN statement_timestamp() END, a.duration_ms,
            a.error, a.input, a.output
        FROM unnest(:attempt_ids::uuid[], :attempt_step_ids::uuid[], :attempt_generations::int[],
            :attempt_numbers::int[], :attempt_statuses::text[], :attempt_durations_ms::int[],
            :attempt_errors::jsonb[], :attempt_inputs::jsonb[], :attempt_outputs::jsonb[])
            AS a(id, step_execution_id, generation, number, status, duration_ms, error, input, output)
        WHERE EXISTS (SELECT FROM sequenced)
    )"""
# The parameters of the fields of ``FinishedAttempt`` and ``NewAttempt``, in their order.
_FINISHED_PARAMETERS = (
    "finished_step_ids",
    "finished_generations",
    "finished_numbers",
    "finished_statuses",
    "finished_step_statuses",
    "finished_durations_ms",
    "finished_errors",
    "finished_outputs",
    "finished_inputs",
)
_NEW_PARAMETERS = (
    "attempt_ids",
    "attempt_step_ids",
    "attempt_generations",
    "attempt_numbers",
    "attempt_statuses",
    "attempt_durations_ms",
    "attempt_errors",
    "attempt_inputs",
    "attempt_outputs",
)


class Carrying(NamedTuple):
    """A change's pending attempt results as pieces of the statement that carries them; both empty when none."""

    ctes: str  # ``FINISHING_ATTEMPTS`` and a comma, to follow a statement's ``WITH``
    params: dict[str, Any]


NOTHING_CARRIED = Carrying("", {})


class SettledStep(msgspec.Struct, frozen=True, kw_only=True):
    """A step whose attempt result a statement wrote: its type, its new status and seconds since it started."""

    step_type: str
    step_status: str
    seconds: float | None


def settled_steps(records: Sequence[asyncpg.Record]) -> list[SettledStep]:
    """The ``FINISHED_STEPS`` among a carrying statement's rows (those of its own have no ``step_type``)."""
    return [
        SettledStep(step_type=record["step_type"], step_status=record["step_status"], seconds=record["seconds"])
        for record in records
        if record["step_type"] is not None
    ]


class FinishedAttempt(NamedTuple):
    """An attempt's result and what it makes of its step."""

    step_execution_id: uuid.UUID
    generation: int
    number: int
    status: str  # the attempt's: completed or failed
    step_status: str  # the step's: completed, failed, or scheduled when it waits for another attempt
    duration_ms: int
    error: dict[str, Any] | None
    output: Any  # the step's: None while it waits for another attempt (a failed attempt has none of its own)
    input: Any  # the rendered input of an attempt that ran inside the change; None keeps the stored one


class NewAttempt(NamedTuple):
    """An attempt of a new execution's step: finished in the change that starts it, or running."""

    id: uuid.UUID
    step_execution_id: uuid.UUID
    generation: int
    number: int
    status: str
    duration_ms: int | None
    error: dict[str, Any] | None
    input: Any
    output: Any


def finishing_params(attempts: Sequence[FinishedAttempt]) -> dict[str, Any]:
    """The parameters of ``FINISHING_ATTEMPTS`` but the owner's (``tenant_id``, ``execution_id``, ``worker``)."""
    params: dict[str, Any] = {
        name: list(column) for name, column in zip(_FINISHED_PARAMETERS, zip(*attempts, strict=True), strict=True)
    }
    params["finished_attempt_ids"] = [uuid7() for _ in attempts]
    return params


def new_attempts_params(attempts: Sequence[NewAttempt]) -> dict[str, list[Any]]:
    """The parameters of ``INSERTING_NEW_ATTEMPTS`` but the owner's."""
    columns = [list(column) for column in zip(*attempts, strict=True)] if attempts else [[]] * len(_NEW_PARAMETERS)
    return dict(zip(_NEW_PARAMETERS, columns, strict=True))


async def finish_attempts(connection: asyncpg.Connection, carrying: Carrying) -> list[SettledStep]:
    """Write pending attempt results by themselves, before a statement that does not carry them."""
    return settled_steps(await connection.fetch(*bind(_FINISHED_ALONE, carrying.params)))


async def create_running_attempt(
    connection: asyncpg.Connection,
    carrying: Carrying,
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    step_execution_id: uuid.UUID,
    generation: int,
    attempt: int,
    step_input: Any,
    worker: str,
    lease_seconds: float,
) -> list[SettledStep]:
    """Start attempt ``attempt`` of a step under ``worker``'s lease, with its attempt row (``STARTING_ATTEMPT``).

    The change's pending attempt results (``carrying``) go with it; the steps they settled come back.
    """
    carried = FINISHED_STEPS if carrying.ctes else "SELECT WHERE false"
    return settled_steps(
        await connection.fetch(
            *bind(
                f"WITH {carrying.ctes} {STARTING_ATTEMPT} {carried}",
                carrying.params,
                step_execution_id=step_execution_id,
                attempt=attempt,
                worker=worker,
                lease_seconds=lease_seconds,
                input=step_input,
                attempt_id=uuid7(),
                tenant_id=tenant_id,
                execution_id=execution_id,
                generation=generation,
            )
        )
    )


async def cancel_running_attempts(
    connection: asyncpg.Connection, execution_id: uuid.UUID, step_execution_ids: list[uuid.UUID]
) -> None:
    """Cancel the running attempts of these steps of an execution (the steps were cancelled)."""
    await connection.execute(
        "UPDATE task_attempts SET status = 'cancelled', finished_at = clock_timestamp() "
        "WHERE execution_id = $2 AND step_execution_id = ANY($1::uuid[]) AND status = 'running'",
        step_execution_ids,
        execution_id,
    )


async def renew_leases(
    connection: asyncpg.Connection | asyncpg.Pool, step_execution_ids: list[uuid.UUID], worker: str, seconds: float
) -> None:
    """Extend the leases ``worker`` holds on these running steps by ``seconds`` from now.

    Rows locked by a transaction of their execution are skipped this round rather than waited for, so renewal
    never holds a step lock while waiting for another (the execution-first lock order).
    """
    await connection.execute(
        "UPDATE step_executions SET lease_expires_at = clock_timestamp() + make_interval(secs => $3) "
        "WHERE id = ANY($1::uuid[]) AND id IN ("  # the keys again: the update finds its rows by them too
        "SELECT id FROM step_executions WHERE id = ANY($1::uuid[]) AND owner = $2 AND status = 'running' "
        "FOR UPDATE SKIP LOCKED)",
        step_execution_ids,
        worker,
        seconds,
    )


async def list_lost_attempts(
    connection: asyncpg.Connection | asyncpg.Pool, step_execution_ids: list[uuid.UUID], worker: str
) -> set[uuid.UUID]:
    """Which of these steps ``worker`` runs no longer: cancelled, or taken over after its lease expired."""
    records = await connection.fetch(
        "SELECT id FROM step_executions WHERE id = ANY($1::uuid[]) "
        "AND (status = 'cancelled' OR (status = 'running' AND owner IS DISTINCT FROM $2))",
        step_execution_ids,
        worker,
    )
    return {record["id"] for record in records}
