"""Step executions: the one builder of an execution's new step rows, and the statement piece that inserts them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from flowline.definitions import StepDefinition
from flowline.ids import uuid7

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


def new_steps(definitions: Sequence[StepDefinition]) -> dict[str, dict[str, Any]]:
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
        for step in definitions
    }


@functools.cache
def inserting_steps(guard: str = "true") -> str:
    """The CTE ``inserted_steps`` that inserts the rows of ``steps_params``, when ``guard`` (SQL) holds.

    Its parameters besides the rows' are ``tenant_id``, ``execution_id``, ``worker`` (a running step's owner)
    and ``lease_seconds``.
    """
    return _INSERT_STEPS.replace("{guard}", guard)


def steps_params(steps: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """The parameters of ``inserting_steps`` for rows made by ``new_steps`` (and changed since)."""
    rows = steps.values()
    return {
        "step_ids": [row["id"] for row in rows],
        "step_step_ids": list(steps),
        "step_positions": list(range(len(steps))),
        "step_types": [row["step_type"] for row in rows],
        "step_statuses": [row["status"] for row in rows],
        "step_inputs": [row["input"] for row in rows],
        "step_outputs": [row["output"] for row in rows],
        "step_errors": [row["error"] for row in rows],
        "step_attempts": [row["attempts"] for row in rows],
    }
