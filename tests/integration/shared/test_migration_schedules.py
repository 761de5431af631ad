"""0006 (schedules) goes up and down keeping the executions and bulk operations that were there."""

from __future__ import annotations

from flowline.runtime.ids import uuid7

from tests.support import at_revision, migrate, old_workflow


async def test_schedules_come_and_go_and_executions_stay(database_url: str) -> None:
    async with at_revision(database_url, "0005") as connection:
        tenant_id, workflow_id, version_id = await old_workflow(connection, "old")
        execution_id, operation_id = uuid7(), uuid7()
        await connection.execute(
            "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, "
            "workflow_version, status, root_execution_id, triggered_by) "
            "VALUES ($1, $2, $3, $4, 'demo.old', 1, 'completed', $1, 'api')",
            execution_id,
            tenant_id,
            workflow_id,
            version_id,
        )
        await connection.execute(
            "INSERT INTO bulk_operations (id, tenant_id, kind, selection) VALUES ($1, $2, 'cancel', '{}')",
            operation_id,
            tenant_id,
        )

        await migrate(database_url, "head")
        upgraded = await connection.fetchrow(
            "SELECT schedule_id, scheduled_for FROM executions WHERE id = $1", execution_id
        )
        await connection.execute(
            "INSERT INTO schedules (id, tenant_id, name, workflow_ref, interval_ms) "
            "VALUES ($1, $2, 'tick', 'demo.old', 1000)",
            uuid7(),
            tenant_id,
        )
        await migrate(database_url, "0005")
        kept = await connection.fetchval("SELECT count(*) FROM executions WHERE id = $1", execution_id)
        operations = await connection.fetchval("SELECT count(*) FROM bulk_operations WHERE id = $1", operation_id)
        tables = {row["tablename"] for row in await connection.fetch("SELECT tablename FROM pg_tables")}

    assert tuple(upgraded) == (None, None)
    assert (kept, operations) == (1, 1)
    assert "schedules" not in tables
