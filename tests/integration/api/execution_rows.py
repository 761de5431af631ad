"""Realistic execution rows written straight into PostgreSQL (the ``api`` fixture runs no engine)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from flowline.runtime.ids import uuid7

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class ExecutionRows:
    """Writes tenants, workflows, executions, steps, attempts and events the way the engine leaves them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._tenants: dict[str, uuid.UUID] = {}
        self._workflows: dict[tuple[uuid.UUID, str], tuple[uuid.UUID, uuid.UUID]] = {}

    async def tenant(self, slug: str = "dev") -> uuid.UUID:
        if slug not in self._tenants:
            tenant_id = await self._pool.fetchval("SELECT id FROM tenants WHERE slug = $1", slug)
            if tenant_id is None:
                tenant_id = await self._pool.fetchval(
                    "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $2) RETURNING id", uuid7(), slug
                )
            self._tenants[slug] = tenant_id
        return self._tenants[slug]

    async def workflow(self, tenant_id: uuid.UUID, ref: str) -> tuple[uuid.UUID, uuid.UUID]:
        if (tenant_id, ref) not in self._workflows:
            pack, name = ref.split(".", 1)
            pack_id = await self._pool.fetchval(
                "SELECT id FROM packs WHERE tenant_id = $1 AND ref = $2", tenant_id, pack
            ) or await self._pool.fetchval(
                "INSERT INTO packs (id, tenant_id, ref) VALUES ($1, $2, $3) RETURNING id", uuid7(), tenant_id, pack
            )
            workflow_id, version_id = uuid7(), uuid7()
            await self._pool.execute(
                "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version) "
                "VALUES ($1, $2, $3, $4, $5, 1)",
                workflow_id,
                tenant_id,
                pack_id,
                ref,
                name,
            )
            await self._pool.execute(
                "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) "
                "VALUES ($1, $2, $3, 1, '{\"steps\": []}')",
                version_id,
                tenant_id,
                workflow_id,
            )
            self._workflows[(tenant_id, ref)] = (workflow_id, version_id)
        return self._workflows[(tenant_id, ref)]

    async def execution(
        self,
        *,
        tenant: str = "dev",
        workflow: str = "demo.hello",
        status: str = "completed",
        created_at: datetime = T0,
        run_seconds: float | None = 2.0,
        triggered_by: str = "api",
        started_by: str | None = None,
        parent: uuid.UUID | None = None,
        parent_step: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: list[str] | None = None,
        execution_input: dict[str, Any] | None = None,
        output: Any = None,
        error: dict[str, Any] | None = None,
        cancelled_by: str | None = None,
        execution_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """An execution; started a second after creation unless pending, finished ``run_seconds`` later when
        its status is terminal."""
        tenant_id = await self.tenant(tenant)
        workflow_id, version_id = await self.workflow(tenant_id, workflow)
        execution_id = execution_id or uuid7()
        started_at = None if status == "pending" else created_at + timedelta(seconds=1)
        terminal = status in ("completed", "failed", "cancelled")
        completed_at = started_at + timedelta(seconds=run_seconds or 0) if terminal and started_at else None
        await self._pool.execute(
            """
            INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, workflow_version,
                status, input, output, error, parent_execution_id, parent_step_id, root_execution_id, triggered_by,
                metadata, tags, created_at, updated_at, started_at, completed_at, cancelled_at, cancelled_by,
                started_by)
            VALUES ($1::uuid, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10::uuid, $11,
                coalesce($10::uuid, $1::uuid), $12, $13, $14, $15, $15,
                $16,
                $17, $18, $19, $20)
            """,
            execution_id,
            tenant_id,
            workflow_id,
            version_id,
            workflow,
            status,
            execution_input or {},
            output,
            error,
            parent,
            parent_step,
            triggered_by,
            metadata or {},
            tags or [],
            created_at,
            started_at,
            completed_at,
            completed_at if status == "cancelled" else None,
            cancelled_by,
            started_by,
        )
        return execution_id

    async def step(
        self,
        execution_id: uuid.UUID,
        step_id: str,
        *,
        position: int,
        step_type: str = "action",
        status: str = "completed",
        attempts: int = 1,
        output: Any = None,
        error: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        """A step execution; started and finished timestamps follow its status."""
        task_id = uuid7()
        tenant_id = await self._pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", execution_id)
        started = status not in ("pending", "scheduled", "skipped")
        finished = status in ("completed", "failed", "cancelled", "skipped")
        await self._pool.execute(
            """
            INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status, attempts,
                input, output, error, scheduled_at, started_at, completed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '{}', $9, $10, $11, $12, $13)
            """,
            task_id,
            tenant_id,
            execution_id,
            step_id,
            position,
            step_type,
            status,
            attempts,
            output,
            error,
            T0 if status != "pending" else None,
            T0 + timedelta(milliseconds=10) if started else None,
            T0 + timedelta(milliseconds=250) if finished else None,
        )
        return task_id

    async def attempt(
        self,
        task_id: uuid.UUID,
        number: int,
        status: str,
        *,
        worker: str = "executor-1",
        error: dict[str, Any] | None = None,
        generation: int = 0,
    ) -> None:
        """An attempt of a task, 100 ms long unless still running."""
        step = await self._pool.fetchrow("SELECT tenant_id, execution_id FROM step_executions WHERE id = $1", task_id)
        started_at = T0 + timedelta(seconds=number)
        finished = status != "running"
        await self._pool.execute(
            """
            INSERT INTO task_attempts (id, tenant_id, step_execution_id, execution_id, generation, number, status,
                worker, started_at, finished_at, duration_ms, error)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            """,
            uuid7(),
            step["tenant_id"],
            task_id,
            step["execution_id"],
            generation,
            number,
            status,
            worker,
            started_at,
            started_at + timedelta(milliseconds=100) if finished else None,
            100 if finished else None,
            error,
        )

    async def events(self, execution_id: uuid.UUID, *events: tuple[str, str | None, dict[str, Any]]) -> None:
        """Append ``(event type, step id, data)`` entries after the execution's last sequence."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "SELECT tenant_id, last_event_sequence FROM executions WHERE id = $1 FOR UPDATE", execution_id
            )
            sequence = row["last_event_sequence"]
            for event_type, step_id, data in events:
                sequence += 1
                await connection.execute(
                    "INSERT INTO execution_events (execution_id, sequence, tenant_id, event_type, step_id, data, "
                    "occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    execution_id,
                    sequence,
                    row["tenant_id"],
                    event_type,
                    step_id,
                    data,
                    T0 + timedelta(milliseconds=sequence),
                )
            await connection.execute(
                "UPDATE executions SET last_event_sequence = $2 WHERE id = $1", execution_id, sequence
            )
