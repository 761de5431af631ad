from datetime import UTC, datetime, timedelta

import asyncpg
from flowline.db.log_partitions import is_partition
from flowline.db.tables import metadata
from flowline.runtime.ids import uuid7

from tests.support import at_revision, migrate, old_workflow


def _not_a_log_partition(name: str | None, type_: str, parent_names: object) -> bool:
    """The partitions of task_logs are the scheduler's, not the table definitions'."""
    return not (type_ == "table" and name is not None and is_partition(name))


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


async def test_downgrade_to_base_then_upgrade_to_head(database_url: str) -> None:
    assert set(metadata.tables) <= await _tables(database_url)

    await migrate(database_url, "base")
    assert await _tables(database_url) <= {"alembic_version"}

    await migrate(database_url, "head")
    assert set(metadata.tables) <= await _tables(database_url)


async def test_the_migrations_match_the_table_definitions(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"include_name": _not_a_log_partition}), metadata
                )
            )
    finally:
        await engine.dispose()
    assert differences == []


async def test_executions_keep_their_owner_and_learn_who_started_them(database_url: str) -> None:
    """0004: the owner moves to ``owned_by`` unchanged; ``started_by`` is worked out from what each row holds."""
    async with at_revision(database_url, "0003") as connection:
        tenant_id, workflow_id, version_id = await old_workflow(connection, "old")
        key, jwt, kafka, child, unknown = (uuid7() for _ in range(5))
        rows = [  # id, triggered_by, the owner (then called started_by), parent
            (key, "api", "api-key:0193a5a0-6c00-7000-8000-1a2b3c4d5e6f", None),
            (jwt, "rerun", "ada", None),
            (kafka, "kafka", None, None),
            (child, "workflow", "ada", jwt),
            (unknown, "api", None, None),
        ]
        for execution_id, triggered_by, owner, parent in rows:
            await connection.execute(
                "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, "
                "workflow_version, status, root_execution_id, triggered_by, started_by, parent_execution_id) "
                "VALUES ($1, $2, $3, $4, 'demo.old', 1, 'completed', coalesce($7::uuid, $1::uuid), $5, $6, $7)",
                execution_id,
                tenant_id,
                workflow_id,
                version_id,
                triggered_by,
                owner,
                parent,
            )

        await migrate(database_url, "head")
        upgraded = {
            record["id"]: (record["owned_by"], record["started_by"])
            for record in await connection.fetch("SELECT id, owned_by, started_by FROM executions")
        }
        await migrate(database_url, "0003")
        downgraded = {
            record["id"]: record["started_by"]
            for record in await connection.fetch("SELECT id, started_by FROM executions")
        }

    assert upgraded == {
        key: ("api-key:0193a5a0-6c00-7000-8000-1a2b3c4d5e6f", "api-key:0193a5a0-6c00-7000-8000-1a2b3c4d5e6f"),
        jwt: ("ada", "jwt:ada"),
        kafka: (None, "kafka"),
        child: ("ada", f"parent:{jwt}"),
        unknown: (None, None),
    }
    assert downgraded == {execution_id: owner for execution_id, _, owner, _ in rows}


async def test_bulk_operations_learn_their_creator_from_the_audit_log(database_url: str) -> None:
    """0005: an operation's ``created_by`` is the principal of its creation's audit row; without one, unknown."""
    async with at_revision(database_url, "0004") as connection:
        tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        audited, unaudited = uuid7(), uuid7()
        for operation_id in (audited, unaudited):
            await connection.execute(
                "INSERT INTO bulk_operations (id, tenant_id, kind, selection) VALUES ($1, $2, 'cancel', '{}')",
                operation_id,
                tenant_id,
            )
        await connection.execute(
            "INSERT INTO audit_logs (id, tenant_id, entity_type, entity_id, action, principal) "
            "VALUES ($1, $2, 'bulk_operation', $3, 'create', 'jwt-subject')",
            uuid7(),
            tenant_id,
            str(audited),
        )

        await migrate(database_url, "head")
        creators = dict(await connection.fetch("SELECT id, created_by FROM bulk_operations"))

    assert creators == {audited: "jwt-subject", unaudited: None}


async def test_task_logs_keep_every_record_when_partitioned_and_back(database_url: str) -> None:
    """0009: the table as it was becomes the first partition; down, every record is copied back into one table."""
    async with at_revision(database_url, "0005") as connection:
        tenant_id, workflow_id, version_id = await old_workflow(connection, "logs")
        running, finished = uuid7(), uuid7()
        for execution_id, status in ((running, "running"), (finished, "completed")):
            await connection.execute(
                "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, "
                "workflow_version, status, root_execution_id, triggered_by) "
                "VALUES ($1, $2, $3, $4, 'demo.logs', 1, $5, $1, 'api')",
                execution_id,
                tenant_id,
                workflow_id,
                version_id,
                status,
            )
        task_id = uuid7()
        now = datetime.now(UTC)
        records = [  # id, execution, task, message, timestamp, metadata
            (uuid7(), finished, None, "years ago", datetime(2024, 2, 29, 23, 59, tzinfo=UTC), '{"n": 1}'),
            (uuid7(), finished, uuid7(), "an hour ago", now - timedelta(hours=1), None),
            (uuid7(), running, task_id, "still going", now - timedelta(minutes=2), "{}"),
            (uuid7(), running, task_id, "ünïcode", now - timedelta(minutes=1), None),
        ]
        await connection.executemany(
            "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, level, message, timestamp, metadata) "
            "VALUES ($1, $7, $2, $3, 'INFO', $4, $5, $6::jsonb)",
            [(*record, tenant_id) for record in records],
        )
        columns = "id, execution_id, task_id, message, timestamp, metadata::text"
        before = set(await connection.fetch(f"SELECT {columns} FROM task_logs"))

        await migrate(database_url, "head")
        partitioned = set(await connection.fetch(f"SELECT {columns} FROM task_logs"))
        holders = {row[0] for row in await connection.fetch("SELECT DISTINCT tableoid::regclass::text FROM task_logs")}
        usage = [tuple(row) for row in await connection.fetch("SELECT task_key, records, bytes FROM task_log_usage")]
        kind = await connection.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'task_logs'")
        later = (uuid7(), finished, None, "after the migration", now + timedelta(days=2), None)
        await connection.execute(
            "INSERT INTO task_logs (id, tenant_id, execution_id, task_id, level, message, timestamp, metadata) "
            "VALUES ($1, $7, $2, $3, 'INFO', $4, $5, $6::jsonb)",
            *later,
            tenant_id,
        )

        await migrate(database_url, "0005")
        plain = set(await connection.fetch(f"SELECT {columns} FROM task_logs"))
        plain_kind = await connection.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'task_logs'")
        key = await connection.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_task_logs'"
        )

    assert len(before) == 4 and partitioned == before
    assert kind == "p" and len(holders) == 1 and next(iter(holders)).startswith("task_logs_until_")
    assert usage == [(task_id, 2, len("still going") + len("ünïcode".encode()))]
    assert plain_kind == "r" and key == "PRIMARY KEY (id)"
    assert {row["message"] for row in plain} == {record[3] for record in records} | {"after the migration"}
    assert before <= plain


async def test_attempts_learn_their_steps_latest_input_and_output(database_url: str) -> None:
    """0010: each step's latest attempt takes its input (and output when it completed); down, the steps keep theirs."""
    async with at_revision(database_url, "0009") as connection:
        tenant_id, workflow_id, version_id = await old_workflow(connection, "attempts")
        execution_id = uuid7()
        await connection.execute(
            "INSERT INTO executions (id, tenant_id, workflow_id, workflow_version_id, workflow_ref, "
            "workflow_version, status, root_execution_id, triggered_by) "
            "VALUES ($1, $2, $3, $4, 'demo.attempts', 1, 'completed', $1, 'api')",
            execution_id,
            tenant_id,
            workflow_id,
            version_id,
        )
        step_id = uuid7()
        await connection.execute(
            "INSERT INTO step_executions (id, tenant_id, execution_id, step_id, step_type, status, generation, "
            "attempts, input, output, position) "
            "VALUES ($1, $2, $3, 'call', 'http', 'completed', 1, 2, '{\"n\": 5}', '{\"ok\": true}', 0)",
            step_id,
            tenant_id,
            execution_id,
        )
        attempts = [(uuid7(), 1, "failed"), (uuid7(), 2, "completed")]
        for attempt_id, number, status in attempts:
            await connection.execute(
                "INSERT INTO task_attempts (id, tenant_id, step_execution_id, execution_id, generation, number, "
                "status) VALUES ($1, $2, $3, $4, 1, $5, $6)",
                attempt_id,
                tenant_id,
                step_id,
                execution_id,
                number,
                status,
            )

        await migrate(database_url, "head")
        upgraded = await connection.fetch(
            "SELECT number, input::text, output::text FROM task_attempts WHERE step_execution_id = $1 ORDER BY number",
            step_id,
        )
        await migrate(database_url, "0009")
        kept = await connection.fetchrow(
            "SELECT s.input::text, s.output::text, count(a.id) FROM step_executions s "
            "JOIN task_attempts a ON a.step_execution_id = s.id WHERE s.id = $1 GROUP BY s.id",
            step_id,
        )

    assert [tuple(row) for row in upgraded] == [(1, None, None), (2, '{"n": 5}', '{"ok": true}')]
    assert tuple(kept) == ('{"n": 5}', '{"ok": true}', 2)
