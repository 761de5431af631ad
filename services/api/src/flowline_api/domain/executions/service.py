"""Execution reads."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import asyncpg
from flowline.errors import Conflict, NotFound
from flowline.kafka.outbox import OutboxPublisher, enqueue, outgoing
from flowline.messages import PromiseSettled
from flowline.settings import Topics

from flowline_api.domain.executions.schemas import Execution, PromiseSettlement, StepExecution


def _optional_id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


class ExecutionService:
    """Reads executions and their steps; settles promises."""

    def __init__(self, pool: asyncpg.Pool, outbox: OutboxPublisher, topics: Topics) -> None:
        self._pool = pool
        self._outbox = outbox
        self._topics = topics

    async def settle_promise(
        self,
        tenant_id: uuid.UUID,
        execution_id: uuid.UUID,
        name: str,
        *,
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
        await self._outbox.publish(rows)
        return PromiseSettlement(execution_id=str(execution_id), promise=name, status=status, settled_at=settled_at)

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
