"""Finished attempts of one state change, written together by whichever statement of the change comes next.

A step's result is usually followed, in the same change, by the start of the next step's attempt or by the
end of the execution, and the results of instant actions (see ``attempts.runs_here``) gather until one of
those. Written as CTEs of that statement they cost no round trip of their own. They touch only their steps
and attempts, which nothing else in that statement reads, so no statement needs to see them earlier; any
other statement of the change is preceded by ``Finishes.flush``, so it sees them written.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import asyncpg
from flowline.db.sql import bind
from flowline.ids import uuid7

from flowline_executor.metrics import Outcomes

# The finished attempts (arrays of one element per attempt) of the change's execution, on its worker. An
# attempt that started here before this change already has its row (the upsert closes it); one that ran
# inside this change (an instant action) gets its row now. The finished steps return their type, new status
# and duration since their start. They finished before the statement that carries them began, so its start
# is their time: a step that statement starts (clock_timestamp(), in a CTE PostgreSQL may run before these)
# never seems to start before its needs completed.
_CTES = """
finishing AS (
    SELECT * FROM unnest(:finished_step_ids::uuid[], :finished_generations::int[], :finished_numbers::int[],
        :finished_statuses::text[], :finished_step_statuses::text[], :finished_durations_ms::int[],
        :finished_errors::jsonb[], :finished_outputs::jsonb[], :finished_inputs::jsonb[],
        :finished_attempt_ids::uuid[])
        AS f(step_execution_id, generation, number, status, step_status, duration_ms, error, output, input, attempt_id)
), finished_attempts AS (
    INSERT INTO task_attempts AS a (id, tenant_id, step_execution_id, execution_id, generation, number, status,
        worker, started_at, finished_at, duration_ms, error)
    SELECT attempt_id, :tenant_id, step_execution_id, :execution_id, generation, number, status, :worker,
        statement_timestamp(), statement_timestamp(), duration_ms, error
    FROM finishing
    ON CONFLICT (step_execution_id, generation, number) DO UPDATE SET status = excluded.status,
        finished_at = excluded.finished_at, duration_ms = excluded.duration_ms, error = excluded.error
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
# What a carrying statement selects to hand the finished steps back to ``Finishes.carried``.
FINISHED_STEPS = "SELECT step_type, status AS step_status, seconds FROM finished_steps"
# The pending results alone, before a statement that does not carry them.
_FLUSH = f"WITH {_CTES} {FINISHED_STEPS}"


class FinishedAttempt(NamedTuple):
    """An attempt's result and what it makes of its step."""

    step_execution_id: uuid.UUID
    generation: int
    number: int
    status: str  # the attempt's: completed or failed
    step_status: str  # the step's: completed, failed, or scheduled when it waits for another attempt
    duration_ms: int
    error: dict[str, Any] | None
    output: Any
    input: Any  # the rendered input of an attempt that ran inside the change; None keeps the stored one


# The parameters of the fields of ``FinishedAttempt``, in their order.
_PARAMETERS = (
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


class Finishes:
    """The finished attempts of one change not yet written."""

    def __init__(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, worker: str) -> None:
        self._owner = {"tenant_id": tenant_id, "execution_id": execution_id, "worker": worker}
        self._pending: list[FinishedAttempt] = []

    def add(self, attempt: FinishedAttempt) -> None:
        """Keep an attempt's result for the change's next statement."""
        self._pending.append(attempt)

    def carry(self) -> tuple[str, dict[str, Any]]:
        """The pending results as CTEs (ending in a comma) and their named parameters.

        Both are empty when nothing is pending. The statement that takes them must select ``FINISHED_STEPS``
        (with its own rows, if any) and hand the rows to ``carried``.
        """
        if not self._pending:
            return "", {}
        params: dict[str, Any] = {
            name: list(column) for name, column in zip(_PARAMETERS, zip(*self._pending, strict=True), strict=True)
        }
        params.update(finished_attempt_ids=[uuid7() for _ in self._pending], **self._owner)
        self._pending = []
        return _CTES + ",", params

    def take(self) -> list[FinishedAttempt]:
        """The pending results, for a statement that writes their steps' rows whole (a new execution's)."""
        pending, self._pending = self._pending, []
        return pending

    async def flush(self, connection: asyncpg.Connection, outcomes: Outcomes) -> None:
        """Write the pending results now, before a statement that does not carry them."""
        ctes, params = self.carry()
        if ctes:
            self.carried(await connection.fetch(*bind(_FLUSH, params)), outcomes)

    @staticmethod
    def carried(rows: list[asyncpg.Record], outcomes: Outcomes) -> None:
        """Count the steps a carrying statement finished (rows of ``FINISHED_STEPS``; others are ignored)."""
        outcomes.steps_finished.extend(
            (row["step_type"], row["step_status"], row["seconds"])
            for row in rows
            if row["step_type"] is not None and row["step_status"] != "scheduled"
        )
