"""0008 (retention): up and down with every row kept; a rerun's key to its original clears when the original goes."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from flowline.db.migrate import downgrade, upgrade_head
from flowline.runtime.ids import uuid7

REVISION_BEFORE = "0007"


async def test_the_retention_migration_goes_up_and_down_keeping_every_row(database_url: str) -> None:
    await asyncio.to_thread(downgrade, database_url, REVISION_BEFORE)
    connection = await asyncpg.connect(database_url)
    try:
        tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        pack_id, workflow_id, version_id, original, rerun = (uuid7() for _ in range(5))
        await connection.execute("INSERT INTO packs (id, tenant_id, ref) VALUES ($1, $2, 'demo')", pack_id, tenant_id)
        await connection.execute(
            "INSERT INTO workflows (id, tenant_id, pack_id, ref, name, latest_version) "
            "VALUES ($1, $2, $3, 'demo.old', 'old', 1)",
            workflow_id,
            tenant_id,
            pack_id,
        )
        await connection.execute(
            "INSERT INTO workflow_versions (id, tenant_id, workflow_id, version, definition) "
            "VALUES ($1, $2, $3, 1, '{}')",
            version_id,
            tenant_id,
            workflow_id,
        )
        for execution_id, rerun_of in ((original, None), (rerun, original)):
            await connection.execute(
                "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, "
                "workflow_version, status, root_execution_id, triggered_by, rerun_of, completed_at) "
                "VALUES ($1, $2, $3, $4, 'demo.old', 1, 'completed', $1, 'api', $5, now())",
                execution_id,
                tenant_id,
                workflow_id,
                version_id,
                rerun_of,
            )
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # before 0008 the rerun's key refuses the removal
            await connection.execute("DELETE FROM executions WHERE id = $1", original)

        await asyncio.to_thread(upgrade_head, database_url)
        assert await connection.fetchval("SELECT retention_seconds FROM workflows WHERE id = $1", workflow_id) is None
        await connection.execute("UPDATE workflows SET retention_seconds = 3600 WHERE id = $1", workflow_id)
        await asyncio.to_thread(downgrade, database_url, REVISION_BEFORE)
        kept = await connection.fetch("SELECT id, rerun_of FROM executions ORDER BY id")
        columns = await connection.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'workflows' "
            "AND column_name = 'retention_seconds'"
        )
        await asyncio.to_thread(upgrade_head, database_url)
        await connection.execute("DELETE FROM executions WHERE id = $1", original)
        after_removal = await connection.fetchval("SELECT rerun_of FROM executions WHERE id = $1", rerun)
    finally:
        await connection.close()

    assert [(row["id"], row["rerun_of"]) for row in kept] == [(original, None), (rerun, original)]
    assert columns == []
    assert after_removal is None
