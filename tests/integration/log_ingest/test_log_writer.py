from __future__ import annotations

import uuid

import asyncpg
import msgspec
import pytest
from flowline.db.pool import create_pool
from flowline.db.task_logs import STAGING
from flowline.domain.task_log_limits import LogLimits
from flowline.kafka.consumer import MessageRefused
from flowline.messages import LogMessage, TaskLogBatch, TaskLogRecord, decoder, encode
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_log_ingest.ingest import LogWriter
from flowline_log_ingest.metrics import LogIngestMetrics
from prometheus_client import CollectorRegistry

from tests.integration.api.execution_rows import ExecutionRows
from tests.support import eventually, read_topic

LIMITS = LogLimits.from_settings(Settings())


async def _execution(pool: asyncpg.Pool, tenant: str = "dev") -> tuple[uuid.UUID, uuid.UUID]:
    """A tenant and an execution of its, for log records to name."""
    rows = ExecutionRows(pool)
    execution_id = await rows.execution(tenant=tenant)
    return await rows.tenant(tenant), execution_id


async def test_single_records_and_batches_are_written_once(pool: asyncpg.Pool) -> None:
    tenant_id, execution_id = await _execution(pool)

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
    tenant_id, execution_id = await _execution(pool)
    task_id = uuid.uuid4()
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
        tenant_id, execution_id = await _execution(pool)
        writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), LIMITS, staging_ready=True)
        for message in ("one", "two", "three"):  # batches on the same connections: the staged rows are gone
            await writer.write([TaskLogRecord(tenant_id=tenant_id, execution_id=execution_id, message=message)])
        rows = await pool.fetch("SELECT message FROM task_logs WHERE execution_id = $1 ORDER BY message", execution_id)
        assert [row["message"] for row in rows] == ["one", "three", "two"]
    finally:
        await pool.close()


async def test_records_naming_an_execution_of_another_tenant_are_refused_and_write_nothing(pool: asyncpg.Pool) -> None:
    tenant_a, execution_of_a = await _execution(pool, "tenant-a")
    tenant_b, _ = await _execution(pool, "tenant-b")
    writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), LIMITS)
    honest = TaskLogRecord(tenant_id=tenant_a, execution_id=execution_of_a, message="mine")
    forged = TaskLogRecord(tenant_id=tenant_b, execution_id=execution_of_a, message="planted")
    unknown = TaskLogRecord(tenant_id=tenant_a, execution_id=uuid.uuid4(), message="nowhere")

    for refused in ([honest, forged], [unknown]):
        with pytest.raises(MessageRefused):
            await writer.write(refused)
    assert await pool.fetchval("SELECT count(*) FROM task_logs") == 0
    await writer.write([honest])
    assert await pool.fetchval("SELECT count(*) FROM task_logs") == 1


async def test_the_consumer_dead_letters_a_forged_record_and_stores_the_rest_of_its_batch(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    tenant_a, execution_of_a = await _execution(pool, "tenant-a")
    tenant_b, _ = await _execution(pool, "tenant-b")
    honest = [TaskLogRecord(tenant_id=tenant_a, execution_id=execution_of_a, message=f"line {n}") for n in range(3)]
    forged = TaskLogRecord(tenant_id=tenant_b, execution_id=execution_of_a, message="planted")
    key = str(execution_of_a).encode()
    for record in [honest[0], forged, *honest[1:]]:  # one partition, one poll: a batch with the forgery inside
        await runtime.producer.send_and_wait(settings.topics.logs, encode(record), key=key)

    writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), LIMITS)
    consumer = runtime.consumer(
        "test-log-ingest", [settings.topics.logs], decoder(LogMessage), batch_handler=writer.write
    )
    await consumer.start()
    try:

        async def honest_stored() -> bool:
            await consumer.poll_once()
            return bool(await pool.fetchval("SELECT count(*) FROM task_logs") == len(honest))

        await eventually(honest_stored)
    finally:
        await consumer.stop()

    [dead] = await read_topic(settings, settings.topics.dead_letter, 1)
    assert dead.value == encode(forged)
    assert dict(dead.headers)["error"].startswith(b"refused: ")
    stored = await pool.fetch("SELECT tenant_id, message FROM task_logs ORDER BY message")
    assert [tuple(row) for row in stored] == [(tenant_a, f"line {n}") for n in range(3)]
