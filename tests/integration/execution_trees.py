"""Execution trees with a row in every table that holds an execution's rows, and a count of what is left of them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from flowline.db.tables import metadata
from flowline.runtime.ids import uuid7

from tests.integration.api.execution_rows import ExecutionRows


@dataclass
class Tree:
    """A root execution and its descendants (root first), and the task ids of their steps."""

    root: uuid.UUID
    members: list[uuid.UUID] = field(default_factory=list)
    tasks: list[uuid.UUID] = field(default_factory=list)


def finished_ago(seconds: float) -> datetime:
    """The creation time of an execution that ``ExecutionRows`` finishes ``seconds`` ago (it runs for 3 s)."""
    return datetime.now(UTC) - timedelta(seconds=seconds + 3)


async def full_execution(
    rows: ExecutionRows, pool: asyncpg.Pool, execution_id: uuid.UUID, tree: Tree, *, finished: bool = True
) -> None:
    """Give an execution a step with an attempt, a timer, a promise, events, task log records and an unsent message."""
    task_id = await rows.step(execution_id, "work", position=0, status="completed" if finished else "running")
    await rows.attempt(task_id, 1, "completed" if finished else "running")
    await rows.events(execution_id, ("WORKFLOW_STARTED", None, {}), ("TASK_STARTED", "work", {"n": 1}))
    tenant_id = await pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", execution_id)
    await pool.execute(
        "INSERT INTO timers (id, tenant_id, execution_id, step_execution_id, kind, status, fire_at) "
        "VALUES ($1, $2, $3, $4, 'sleep', 'fired', now())",
        uuid7(),
        tenant_id,
        execution_id,
        task_id,
    )
    await pool.execute(
        "INSERT INTO promises (id, tenant_id, execution_id, step_execution_id, name, status) "
        "VALUES ($1, $2, $3, $4, 'approval', 'resolved')",
        uuid7(),
        tenant_id,
        execution_id,
        task_id,
    )
    for number in range(3):
        await pool.execute(
            "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp) "
            # Stamped while the execution ran, as a worker stamps them (retention looks for them around then).
            "VALUES ($1, $2, $3, $4, 'work', 1, 'INFO', $5, (SELECT created_at FROM executions WHERE id = $3))",
            uuid7(),
            tenant_id,
            execution_id,
            task_id,
            f"line {number}",
        )
    await pool.execute(
        "INSERT INTO outbox (id, topic, key, payload) VALUES ($1, 'flowline.events', $2, '\\x00')",
        uuid7(),
        str(execution_id).encode(),
    )
    tree.members.append(execution_id)
    tree.tasks.append(task_id)


async def execution_tree(
    rows: ExecutionRows,
    pool: asyncpg.Pool,
    *,
    finished_seconds_ago: float,
    workflow: str = "demo.hello",
    root_status: str = "completed",
    child_status: str = "completed",
    grandchild_status: str = "failed",
) -> Tree:
    """A root with a child and a grandchild, each with rows in every table (see ``full_execution``)."""
    created_at = finished_ago(finished_seconds_ago)
    root = await rows.execution(workflow=workflow, status=root_status, created_at=created_at)
    tree = Tree(root)
    await full_execution(rows, pool, root, tree)
    child = await rows.execution(
        workflow="demo.child", status=child_status, created_at=created_at, parent=root, parent_step="work"
    )
    await full_execution(rows, pool, child, tree, finished=child_status != "running")
    grandchild = await rows.execution(
        workflow="demo.child", status=grandchild_status, created_at=created_at, parent=child, parent_step="work"
    )
    # A grandchild's root is the root (``ExecutionRows`` makes it the parent).
    await pool.execute("UPDATE executions SET root_execution_id = $1 WHERE id = $2", root, grandchild)
    await full_execution(rows, pool, grandchild, tree)
    return tree


async def rows_left(pool: asyncpg.Pool, execution_ids: list[uuid.UUID]) -> dict[str, int]:
    """How many rows of these executions each table holds, for every table with an execution's rows.

    A table holds an execution's rows when it has an ``execution_id`` column, or is ``executions`` itself, or
    is the outbox (keyed by the execution id); a new such table is counted without changing this.
    """
    keys = [str(execution_id).encode() for execution_id in execution_ids]
    counts = {}
    for name, table in metadata.tables.items():
        if name == "executions":
            query, argument = "id = ANY($1::uuid[]) OR parent_execution_id = ANY($1::uuid[])", execution_ids
        elif "execution_id" in table.columns:
            query, argument = "execution_id = ANY($1::uuid[])", execution_ids
        elif name == "outbox":
            query, argument = "key = ANY($1::bytea[])", keys
        else:
            continue
        counts[name] = await pool.fetchval(f"SELECT count(*) FROM {name} WHERE {query}", argument)
    return counts


async def rows_kept(pool: asyncpg.Pool, execution_ids: list[uuid.UUID]) -> dict[str, int]:
    """``rows_left`` but the outbox: what a refused removal must leave as it was.

    A running api's outbox relay publishes (and so removes) the executions' outbox rows on its own meanwhile.
    """
    return {table: count for table, count in (await rows_left(pool, execution_ids)).items() if table != "outbox"}
