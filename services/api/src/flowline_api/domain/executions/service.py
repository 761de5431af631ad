"""Execution reads."""

from __future__ import annotations

import uuid
from collections import Counter

import asyncpg
from flowline.errors import NotFound

from flowline_api.domain.executions.schemas import Execution, StepExecution


def _optional_id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


class ExecutionService:
    """Reads executions and their steps."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def read(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> Execution:
        """One execution with its steps, in definition order.

        Raises:
            NotFound: no such execution in this tenant.
        """
        async with self._pool.acquire() as connection:
            record = await connection.fetchrow(
                "SELECT * FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
            )
            if record is None:
                raise NotFound(f"execution {execution_id} does not exist")
            steps = await connection.fetch(
                "SELECT id, step_id, step_type, status, attempts, input, output, error, scheduled_at, started_at, "
                "completed_at FROM step_executions WHERE execution_id = $1 ORDER BY position",
                execution_id,
            )
        duration_ms = None
        if record["started_at"] and record["completed_at"]:
            duration_ms = round((record["completed_at"] - record["started_at"]).total_seconds() * 1000)
        return Execution(
            id=str(record["id"]),
            workflow_ref=record["workflow_ref"],
            workflow_version=record["workflow_version"],
            status=record["status"],
            input=record["input"],
            output=record["output"],
            error=record["error"],
            triggered_by=record["triggered_by"],
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
            duration_ms=duration_ms,
            step_counts=dict(Counter(step["status"] for step in steps)),
            steps=[
                StepExecution(
                    task_id=str(step["id"]),
                    step_id=step["step_id"],
                    type=step["step_type"],
                    status=step["status"],
                    attempts=step["attempts"],
                    input=step["input"],
                    output=step["output"],
                    error=step["error"],
                    scheduled_at=step["scheduled_at"],
                    started_at=step["started_at"],
                    completed_at=step["completed_at"],
                )
                for step in steps
            ],
        )
