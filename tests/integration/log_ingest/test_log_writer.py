from __future__ import annotations

import uuid

import asyncpg
import msgspec
from flowline.db.pool import create_pool
from flowline.db.task_logs import STAGING
from flowline.messages import TaskLogBatch, TaskLogRecord
from flowline.settings import Settings
from flowline.task_log_limits import LogLimits
from flowline_log_ingest.ingest import LogWriter
from flowline_log_ingest.metrics import LogIngestMetrics
from prometheus_client import CollectorRegistry

LIMITS = LogLimits.from_settings(Settings())


async def test_single_records_and_batches_are_written_once(pool: asyncpg.Pool) -> None:
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    execution_id = uuid.uuid4()

    def record(message: str) -> TaskLogRecord:
        return TaskLogRecord(tenant_id=tenant_id, execution_id=execution_id, step_id="a", attempt=1, message=message)

    single = record("alone")
    batch = TaskLogBatch(tenant_id=tenant_id, execution_id=execution_id, records=[record("one"), record("two")])
    registry = CollectorRegistry()
    writer = LogWriter(pool, LogIngestMetrics(registry), LIMITS)

    await writer.write([single, batch])
    await writer.write([batch, single])  # redelivered

    messages = await pool.fetch("SELECT message FROM task_logs WHERE execution_id = $1 ORDER BY message", execution_id)
    assert [row["message"] for row in messages] == ["alone", "one", "two"]
    assert registry.get_sample_value("flowline_task_log_records_total", {"outcome": "written"}) == 3
    assert registry.get_sample_value("flowline_task_log_records_total", {"outcome": "duplicate"}) == 3
    assert registry.get_sample_value("flowline_task_log_batch_records_count") == 2
    assert registry.get_sample_value("flowline_task_log_batch_records_sum") == 6


async def test_fields_survive_the_staging_table_and_a_record_repeated_within_a_batch_is_written_once(
    pool: asyncpg.Pool,
) -> None:
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    execution_id, task_id = uuid.uuid4(), uuid.uuid4()
    record = TaskLogRecord(
        tenant_id=tenant_id,
        execution_id=execution_id,
        task_id=task_id,
        step_id="charge",
        attempt=2,
        level="WARN",
        message="card declined, retrying",
        metadata={"order": 7, "tags": ["eu", "vip"], "nested": {"ok": False}},
    )
    bare = TaskLogRecord(tenant_id=tenant_id, execution_id=execution_id, message="no task")
    registry = CollectorRegistry()
    writer = LogWriter(pool, LogIngestMetrics(registry), LIMITS)

    await writer.write([TaskLogBatch(tenant_id=tenant_id, execution_id=execution_id, records=[record, bare]), record])
    await writer.write([record])  # a later batch on the same pooled connections finds the staging table empty

    rows = await pool.fetch(
        "SELECT id, task_id, step_id, attempt, level, message, timestamp, metadata FROM task_logs "
        "WHERE execution_id = $1 ORDER BY message",
        execution_id,
    )
    assert [dict(row) for row in rows] == [
        {
            "id": record.id,
            "task_id": task_id,
            "step_id": "charge",
            "attempt": 2,
            "level": "WARN",
            "message": "card declined, retrying",
            "timestamp": record.timestamp,
            "metadata": {"order": 7, "tags": ["eu", "vip"], "nested": {"ok": False}},
        },
        {
            "id": bare.id,
            "task_id": None,
            "step_id": None,
            "attempt": None,
            "level": "INFO",
            "message": "no task",
            "timestamp": bare.timestamp,
            "metadata": {},
        },
    ]
    assert registry.get_sample_value("flowline_task_log_records_total", {"outcome": "written"}) == 2
    assert registry.get_sample_value("flowline_task_log_records_total", {"outcome": "duplicate"}) == 2


async def test_a_pool_that_makes_the_staging_table_per_connection_needs_no_statement_per_batch_for_it(
    settings: Settings,
) -> None:
    pool = await create_pool(
        msgspec.structs.replace(settings, db_pool_min_size=1, db_pool_max_size=2), session_setup=STAGING
    )
    try:
        tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        execution_id = uuid.uuid4()
        writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), LIMITS, staging_ready=True)
        for message in ("one", "two", "three"):  # batches on the same connections: the staged rows are gone
            await writer.write([TaskLogRecord(tenant_id=tenant_id, execution_id=execution_id, message=message)])
        rows = await pool.fetch("SELECT message FROM task_logs WHERE execution_id = $1 ORDER BY message", execution_id)
        assert [row["message"] for row in rows] == ["one", "three", "two"]
    finally:
        await pool.close()
