"""0008 (retention) and 0013 (executions without tree keys): up and down with every row kept.

Under 0008 a rerun's key to its original clears when the original goes; 0013 drops that key and a child's key to
its parent (the removal clears the link itself, tests/integration/scheduler/test_retention.py), and down brings both
back, validated against the rows.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from flowline.runtime.ids import uuid7

from tests.support import at_revision, migrate, old_workflow

REVISION_BEFORE = "0007"
KEYS_DROPPED_AFTER = "0012"
TREE_KEYS = ("fk_executions_parent_execution_id_executions", "fk_executions_rerun_of_executions")


async def test_the_retention_migration_goes_up_and_down_keeping_every_row(database_url: str) -> None:
    async with at_revision(database_url, REVISION_BEFORE) as connection:
        original, rerun = uuid7(), uuid7()
        workflow_id = await _executions(connection, [(original, None, None), (rerun, None, original)])
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # before 0008 the rerun's key refuses the removal
            await connection.execute("DELETE FROM executions WHERE id = $1", original)

        await migrate(database_url, "head")
        assert await connection.fetchval("SELECT retention_seconds FROM workflows WHERE id = $1", workflow_id) is None
        await connection.execute("UPDATE workflows SET retention_seconds = 3600 WHERE id = $1", workflow_id)
        await migrate(database_url, REVISION_BEFORE)
        kept = await connection.fetch("SELECT id, rerun_of FROM executions ORDER BY id")
        columns = await connection.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'workflows' "
            "AND column_name = 'retention_seconds'"
        )
        await migrate(database_url, "head")
        await migrate(database_url, KEYS_DROPPED_AFTER)
        await connection.execute("DELETE FROM executions WHERE id = $1", original)
        after_removal = await connection.fetchval("SELECT rerun_of FROM executions WHERE id = $1", rerun)

    assert [(row["id"], row["rerun_of"]) for row in kept] == [(original, None), (rerun, original)]
    assert columns == []
    assert after_removal is None


async def test_the_tree_keys_go_up_and_come_back_down_with_every_row_kept(database_url: str) -> None:
    async with at_revision(database_url, "head") as connection:
        original, child, rerun = uuid7(), uuid7(), uuid7()
        await _executions(connection, [(original, None, None), (child, original, None), (rerun, None, original)])
        await migrate(database_url, KEYS_DROPPED_AFTER)
        keys_down = await _validated_keys(connection)
        rows_down = await connection.fetch("SELECT id, parent_execution_id, rerun_of FROM executions ORDER BY id")
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # the parent's key is back: a child keeps its parent
            await connection.execute("DELETE FROM executions WHERE id = $1", original)
        await migrate(database_url, "head")
        keys_up = await _validated_keys(connection)
        rows_up = await connection.fetch("SELECT id, parent_execution_id, rerun_of FROM executions ORDER BY id")

    expected = [(original, None, None), (child, original, None), (rerun, None, original)]
    assert [tuple(row) for row in rows_down] == [tuple(row) for row in rows_up] == expected
    assert keys_down == {TREE_KEYS[0]: "a", TREE_KEYS[1]: "n"}  # no action; set null
    assert keys_up == {}


async def _executions(
    connection: asyncpg.Connection, executions: list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]]
) -> uuid.UUID:
    """Insert finished executions (id, parent, original of a rerun) of a new workflow; the workflow's id."""
    tenant_id, workflow_id, version_id = await old_workflow(connection, "old")
    for execution_id, parent, rerun_of in executions:
        await connection.execute(
            "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, "
            "workflow_version, status, parent_execution_id, root_execution_id, triggered_by, rerun_of, completed_at) "
            "VALUES ($1, $2, $3, $4, 'demo.old', 1, 'completed', $5::uuid, "
            "coalesce($5::uuid, $1::uuid), 'api', $6, now())",
            execution_id,
            tenant_id,
            workflow_id,
            version_id,
            parent,
            rerun_of,
        )
    return workflow_id


async def _validated_keys(connection: asyncpg.Connection) -> dict[str, str]:
    """The tree keys of ``executions`` that are validated, with what deleting the referred row does."""
    records = await connection.fetch(
        "SELECT conname, confdeltype::text FROM pg_constraint WHERE conname = ANY($1::text[]) AND convalidated",
        list(TREE_KEYS),
    )
    return {record["conname"]: record["confdeltype"] for record in records}
