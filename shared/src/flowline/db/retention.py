"""Retention's data access: finding finished root executions past their retention, locking trees, removing rows.

An execution goes with its root: a root and all its descendants (``root_execution_id``) are one tree, removed in
one transaction or not at all (docs/architecture.md §6.1).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from flowline.db.sql import bind, typed

FINISHED = "('completed', 'failed', 'cancelled')"
# The tables holding an execution's rows, in the order they are removed: rows that point at steps before the
# steps, the steps before the executions. Each is removed by execution id (``task_logs`` and its per-task counts,
# ``task_log_usage``, have no key to cascade).
EXECUTION_TABLES = (
    "task_logs",
    "task_log_usage",
    "execution_events",
    "task_attempts",
    "timers",
    "promises",
    "step_executions",
)
# Every table an execution's removal takes rows from, for the per-table counts.
REMOVED_TABLES = (*EXECUTION_TABLES, "outbox", "executions")
# How far outside its tree's lifetime (first creation to last finish) a task log record is looked for: records are
# stamped by the workers' clocks. ``task_logs`` is partitioned by day, so the delete probes the few partitions of
# that span instead of every day kept; a record stamped further off stays until its day partition is dropped.
LOG_CLOCK_MARGIN = timedelta(days=1)
# A finished root past its workflow's retention, whose descendants have all finished too.
_REMOVABLE_ROOTS = f"""
    SELECT e.id, e.tenant_id, e.created_at, e.completed_at FROM executions e
    WHERE e.workflow_id = :workflow_id AND e.parent_execution_id IS NULL AND e.status IN {FINISHED}
        AND e.completed_at < :cutoff AND e.id <> ALL(:passed::uuid[])
        AND NOT EXISTS (
            SELECT FROM executions d WHERE d.root_execution_id = e.id AND d.parent_execution_id IS NOT NULL
                AND d.status NOT IN {FINISHED}
        )
    ORDER BY e.completed_at, e.id
    LIMIT :limit
"""


class RetentionCutoff(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow whose oldest finished root is past its retention, and the time before which roots go."""

    workflow_id: uuid.UUID
    cutoff: datetime


class RemovableRoot(msgspec.Struct, frozen=True, kw_only=True):
    """A finished root execution, locked for removal."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    created_at: datetime
    completed_at: datetime


class TreeMember(msgspec.Struct, frozen=True, kw_only=True):
    """A descendant of a root execution: its id, root, status and lifetime."""

    id: uuid.UUID
    root_execution_id: uuid.UUID
    status: str
    created_at: datetime
    completed_at: datetime | None


async def retention_cutoffs(connection: asyncpg.Connection, *, default_seconds: int) -> list[RetentionCutoff]:
    """The workflows (deleted ones too) with a finished root past their retention, oldest such root first.

    A workflow's retention is its own, else its tenant's default, else ``default_seconds`` (the server's).

    One probe of the finished-roots index per workflow: a workflow kept for a year costs nothing however
    many of its executions finished a month ago, which one scan of every workflow's roots by finish time would
    read again on every pass.
    """
    return typed(
        await connection.fetch(
            *bind(
                f"""
                SELECT w.id AS workflow_id, c.cutoff FROM workflows w
                JOIN tenants t ON t.id = w.tenant_id
                CROSS JOIN LATERAL (
                    SELECT now() - make_interval(
                        secs => coalesce(w.retention_seconds, t.retention_seconds, :default_seconds)::float8
                    ) AS cutoff
                ) c
                CROSS JOIN LATERAL (
                    SELECT e.completed_at FROM executions e
                    WHERE e.workflow_id = w.id AND e.parent_execution_id IS NULL AND e.status IN {FINISHED}
                    ORDER BY e.completed_at LIMIT 1
                ) oldest
                WHERE oldest.completed_at < c.cutoff
                ORDER BY oldest.completed_at
                """,
                default_seconds=default_seconds,
            )
        ),
        RetentionCutoff,
    )


async def lock_removable_roots(
    connection: asyncpg.Connection, cutoff: RetentionCutoff, *, passed: Sequence[uuid.UUID], limit: int
) -> list[RemovableRoot]:
    """Lock up to ``limit`` removable roots of one workflow, oldest first, skipping those another transaction holds.

    ``passed`` are roots this pass already kept (see ``flowline.domain.removal``), which are not tried again.
    """
    params = {"workflow_id": cutoff.workflow_id, "cutoff": cutoff.cutoff, "passed": list(passed), "limit": limit}
    return typed(
        await connection.fetch(*bind(f"{_REMOVABLE_ROOTS} FOR UPDATE OF e SKIP LOCKED", params)), RemovableRoot
    )


async def oldest_removable(
    connection: asyncpg.Connection, cutoff: RetentionCutoff, *, passed: Sequence[uuid.UUID]
) -> datetime | None:
    """When the oldest removable root of a workflow finished (None: it has none), without locking anything."""
    params = {"workflow_id": cutoff.workflow_id, "cutoff": cutoff.cutoff, "passed": list(passed), "limit": 1}
    record = await connection.fetchrow(*bind(_REMOVABLE_ROOTS, params))
    return None if record is None else record["completed_at"]


async def lock_root(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, execution_id: uuid.UUID
) -> asyncpg.Record | None:
    """An execution of this tenant locked for removal (waiting for a transaction that holds it), or None."""
    record: asyncpg.Record | None = await connection.fetchrow(
        *bind(
            "SELECT id, tenant_id, status, created_at, completed_at, parent_execution_id, root_execution_id "
            "FROM executions "
            "WHERE id = :execution_id AND tenant_id = :tenant_id FOR UPDATE",
            execution_id=execution_id,
            tenant_id=tenant_id,
        )
    )
    return record


async def lock_descendants(connection: asyncpg.Connection, roots: Sequence[uuid.UUID]) -> list[TreeMember]:
    """The descendants of ``roots`` that this transaction could lock (another transaction's are skipped)."""
    return typed(
        await connection.fetch(
            *bind(
                "SELECT id, root_execution_id, status, created_at, completed_at FROM executions "
                "WHERE root_execution_id = ANY(:roots::uuid[]) AND parent_execution_id IS NOT NULL "
                "FOR UPDATE SKIP LOCKED",
                roots=list(roots),
            )
        ),
        TreeMember,
    )


async def count_descendants(connection: asyncpg.Connection, roots: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many descendants each of ``roots`` has (roots without any are left out)."""
    records = await connection.fetch(
        *bind(
            "SELECT root_execution_id, count(*) AS descendants FROM executions "
            "WHERE root_execution_id = ANY(:roots::uuid[]) AND parent_execution_id IS NOT NULL "
            "GROUP BY root_execution_id",
            roots=list(roots),
        )
    )
    return {record["root_execution_id"]: record["descendants"] for record in records}


async def awaited_by_reruns(connection: asyncpg.Connection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` that a rerun not yet started will copy outputs from (they must stay until it starts)."""
    records = await connection.fetch(
        *bind(
            f"SELECT DISTINCT rerun_of FROM executions WHERE rerun_of = ANY(:ids::uuid[]) AND started_at IS NULL "
            f"AND status NOT IN {FINISHED}",
            ids=list(ids),
        )
    )
    return {record["rerun_of"] for record in records}


async def tenant_slugs(connection: asyncpg.Connection, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The slug of each tenant."""
    records = await connection.fetch(
        *bind("SELECT id, slug FROM tenants WHERE id = ANY(:ids::uuid[])", ids=list(set(tenant_ids)))
    )
    return {record["id"]: record["slug"] for record in records}


async def read_execution_rows(
    connection: asyncpg.Connection, ids: Sequence[uuid.UUID]
) -> dict[str, list[dict[str, Any]]]:
    """Every row of these executions, by table (for their archive), each table's rows in a stable order."""
    orders = {
        "executions": "created_at, id",
        "step_executions": "execution_id, position",
        "task_attempts": "execution_id, started_at, number",
        "timers": "execution_id, created_at, id",
        "promises": "execution_id, created_at, id",
        "execution_events": "execution_id, sequence",
        "task_logs": "execution_id, timestamp, id",
    }
    rows: dict[str, list[dict[str, Any]]] = {}
    for table, order in orders.items():
        column = "id" if table == "executions" else "execution_id"
        records = await connection.fetch(
            *bind(f"SELECT * FROM {table} WHERE {column} = ANY(:ids::uuid[]) ORDER BY {order}", ids=list(ids))
        )
        rows[table] = [dict(record) for record in records]
    return rows


async def delete_execution_rows(
    connection: asyncpg.Connection, ids: Sequence[uuid.UUID], *, lived: tuple[datetime, datetime]
) -> dict[str, int]:
    """Delete the executions ``ids`` (whole trees, locked by the caller) and every row of theirs; counts by table.

    ``lived``: when the first of them was created and the last finished; their task log records are looked for
    in that span widened by ``LOG_CLOCK_MARGIN``. Their unsent messages go too, except one the outbox relay is
    sending right now (it deletes that one itself).
    """
    params = {"ids": list(ids), "logged_from": lived[0] - LOG_CLOCK_MARGIN, "logged_until": lived[1] + LOG_CLOCK_MARGIN}
    removed: dict[str, int] = {}
    for table in EXECUTION_TABLES:
        # A bound on the partition key lets PostgreSQL skip the day partitions outside it (at plan or run time).
        span = " AND timestamp BETWEEN :logged_from AND :logged_until" if table == "task_logs" else ""
        status = await connection.execute(
            *bind(f"DELETE FROM {table} WHERE execution_id = ANY(:ids::uuid[]){span}", params)
        )
        removed[table] = _count(status)
    keys = [str(execution_id).encode() for execution_id in ids]
    status = await connection.execute(
        *bind(
            "DELETE FROM outbox WHERE id IN "
            "(SELECT id FROM outbox WHERE key = ANY(:keys::bytea[]) FOR UPDATE SKIP LOCKED)",
            keys=keys,
        )
    )
    removed["outbox"] = _count(status)
    # The reruns that outlive their original lose their link to it (no key clears it: 0013).
    await connection.execute(
        *bind(
            "UPDATE executions SET rerun_of = NULL WHERE rerun_of = ANY(:ids::uuid[]) AND id <> ALL(:ids::uuid[])",
            params,
        )
    )
    removed["executions"] = _count(
        await connection.execute(*bind("DELETE FROM executions WHERE id = ANY(:ids::uuid[])", params))
    )
    return removed


async def delete_old_audit_rows(connection: asyncpg.Connection, *, retention_seconds: int, limit: int) -> int:
    """Delete up to ``limit`` of the oldest audit rows past ``retention_seconds``; how many went."""
    status = await connection.execute(
        *bind(
            "DELETE FROM audit_logs WHERE id IN (SELECT id FROM audit_logs "
            "WHERE occurred_at < now() - make_interval(secs => :seconds::float8) "
            "ORDER BY occurred_at LIMIT :limit FOR UPDATE SKIP LOCKED)",
            seconds=retention_seconds,
            limit=limit,
        )
    )
    return _count(status)


def _count(status: str) -> int:
    """The row count of a command's status (``DELETE 12``)."""
    return int(status.rsplit(" ", 1)[-1])
