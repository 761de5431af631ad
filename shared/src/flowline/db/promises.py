"""Promises that wait steps wait on: created and settled by the executor, found again when their message was lost."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from flowline.db.sql import typed
from flowline.messages import PromiseSettled
from flowline.runtime.ids import uuid7


class Promise(msgspec.Struct, frozen=True, kw_only=True):
    """A promise as a wait step sees it."""

    name: str
    status: str
    value: Any
    error: dict[str, Any] | None


class SettledPromise(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved or rejected promise whose wait step still waits."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    execution_id: uuid.UUID
    step_execution_id: uuid.UUID

    def settled(self) -> PromiseSettled:
        """The message that tells the executor this promise was settled."""
        return PromiseSettled(
            tenant_id=self.tenant_id,
            execution_id=self.execution_id,
            promise_id=self.id,
            step_execution_id=self.step_execution_id,
        )


class RejectedPromise(msgspec.Struct, frozen=True, kw_only=True):
    """A pending promise rejected because its execution ended, with its wait step."""

    name: str
    task_id: uuid.UUID
    step_id: str


async def create_promise(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    step_execution_id: uuid.UUID,
    name: str,
    expires_at: datetime | None,
) -> uuid.UUID | None:
    """Create the pending promise ``name`` of a wait step; its id, or None when the execution already has one."""
    promise_id: uuid.UUID | None = await connection.fetchval(
        "INSERT INTO promises (id, tenant_id, execution_id, step_execution_id, name, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (execution_id, name) DO NOTHING RETURNING id",
        uuid7(),
        tenant_id,
        execution_id,
        step_execution_id,
        name,
        expires_at,
    )
    return promise_id


async def read_promise(
    connection: asyncpg.Connection, execution_id: uuid.UUID, promise_id: uuid.UUID
) -> Promise | None:
    """The promise ``promise_id``, if it is one of the execution's."""
    record = await connection.fetchrow(
        "SELECT name, status, value, error FROM promises WHERE id = $1 AND execution_id = $2", promise_id, execution_id
    )
    return None if record is None else Promise(**record)


async def time_out_promise(
    connection: asyncpg.Connection, execution_id: uuid.UUID, step_execution_id: uuid.UUID
) -> str | None:
    """Mark the pending promise of a wait step timed out; its name, or None when it was no longer pending."""
    name: str | None = await connection.fetchval(
        "UPDATE promises SET status = 'timed_out', settled_at = clock_timestamp() "
        "WHERE execution_id = $1 AND step_execution_id = $2 AND status = 'pending' RETURNING name",
        execution_id,
        step_execution_id,
    )
    return name


async def reject_pending_promises(
    connection: asyncpg.Connection, execution_id: uuid.UUID, error: dict[str, Any]
) -> list[RejectedPromise]:
    """Reject every pending promise of an execution that ended."""
    return typed(
        await connection.fetch(
            "UPDATE promises p SET status = 'rejected', error = $2, settled_at = clock_timestamp() "
            "FROM step_executions s "
            "WHERE p.execution_id = $1 AND p.status = 'pending' AND s.execution_id = $1 "
            "AND s.id = p.step_execution_id "
            "RETURNING p.name, s.id AS task_id, s.step_id",
            execution_id,
            error,
        ),
        RejectedPromise,
    )


async def list_unapplied_promises(
    connection: asyncpg.Connection, *, older_than: float, limit: int
) -> list[SettledPromise]:
    """Promises settled over ``older_than`` seconds ago whose wait step still waits: their message went missing.

    Settled promises are kept, so they are reached from the running steps (ix_step_executions_lease). A
    promise belongs to its step's execution; matching that too reaches it by its key (execution_id, name), as
    promises have no index on step_execution_id.
    """
    return typed(
        await connection.fetch(
            """
            SELECT p.id, p.tenant_id, p.execution_id, p.step_execution_id
            FROM step_executions s
            JOIN promises p ON p.execution_id = s.execution_id AND p.step_execution_id = s.id
            WHERE s.status = 'running'
              AND p.status IN ('resolved', 'rejected') AND p.settled_at < now() - make_interval(secs => $1)
            LIMIT $2
            """,
            older_than,
            limit,
        ),
        SettledPromise,
    )
