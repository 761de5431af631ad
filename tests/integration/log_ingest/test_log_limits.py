"""Per-task log limits where records are stored: cut messages, the cut-off, and the one record that reports it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from flowline.domain.task_log_limits import DROPPED_KEY, MESSAGE_CUT_KEY, LogLimits, dropped_notice_id
from flowline.messages import TaskLogBatch, TaskLogRecord
from flowline.settings import Settings
from flowline_log_ingest.ingest import LogWriter
from flowline_log_ingest.metrics import LogIngestMetrics
from prometheus_client import CollectorRegistry

from tests.integration.api.execution_rows import ExecutionRows

FIVE_RECORDS = LogLimits(message_max_bytes=32 * 1024, task_max_records=5, task_max_bytes=10 * 1024 * 1024)


class Task:
    """One task of a new execution, and batches of its records."""

    def __init__(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.execution_id = execution_id
        self.task_id = uuid.uuid4()

    def record(self, message: str, **fields: Any) -> TaskLogRecord:
        return TaskLogRecord(
            tenant_id=self.tenant_id,
            execution_id=self.execution_id,
            task_id=self.task_id,
            step_id="work",
            attempt=1,
            message=message,
            **fields,
        )

    def batch(self, *messages: str) -> TaskLogBatch:
        return TaskLogBatch(
            tenant_id=self.tenant_id, execution_id=self.execution_id, records=[self.record(m) for m in messages]
        )


async def _task(pool: asyncpg.Pool) -> Task:
    """A task of a new execution of tenant dev (log-ingest stores records only for executions of their tenant)."""
    rows = ExecutionRows(pool)
    execution_id = await rows.execution(tenant="dev", workflow=f"demo.logs_{uuid.uuid4().hex[:8]}")
    return Task(await rows.tenant("dev"), execution_id)


async def _logs(pool: asyncpg.Pool, execution_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, level, message, metadata FROM task_logs WHERE execution_id = $1 ORDER BY timestamp, id",
        execution_id,
    )


async def test_a_message_over_the_limit_is_stored_cut_and_marked(pool: asyncpg.Pool) -> None:
    task = await _task(pool)
    long = "ü" * 20_000  # 40,000 bytes
    writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), LogLimits.from_settings(Settings()))

    await writer.write([task.batch(long, "short")])

    cut, short = await _logs(pool, task.execution_id)
    assert len(cut["message"].encode()) <= 32 * 1024
    assert cut["message"].endswith(" … [cut: 40000 bytes in all]") and cut["message"].startswith("ü" * 16_000)
    assert cut["metadata"] == {MESSAGE_CUT_KEY: 40_000}
    assert (short["message"], short["metadata"]) == ("short", {})


async def test_a_task_over_its_record_limit_keeps_the_limit_and_one_record_counting_the_rest(
    pool: asyncpg.Pool,
) -> None:
    task = await _task(pool)
    batches = [task.batch(*(f"line {n}" for n in range(first, first + 4))) for first in (0, 4, 8)]
    registry = CollectorRegistry()
    writer = LogWriter(pool, LogIngestMetrics(registry), FIVE_RECORDS)

    for batch in batches:
        await writer.write([batch])
    first_pass = await _logs(pool, task.execution_id)
    for batch in batches:  # every message delivered again, in one batch and one by one
        await writer.write([batch])
    await writer.write(batches)

    stored = await _logs(pool, task.execution_id)
    assert stored == first_pass
    assert [row["message"] for row in stored[:5]] == [f"line {n}" for n in range(5)]
    assert len(stored) == 6
    notice = stored[5]
    assert notice["id"] == dropped_notice_id(task.task_id) and notice["level"] == "WARN"
    assert notice["message"] == FIVE_RECORDS.dropped_notice(7) and notice["metadata"] == {DROPPED_KEY: 7}
    assert registry.get_sample_value("flowline_task_log_records_total", {"outcome": "written"}) == 5
    assert registry.get_sample_value("flowline_task_log_records_total", {"outcome": "dropped"}) == 7
    assert registry.get_sample_value("flowline_task_log_records_total", {"outcome": "duplicate"}) == 24


async def test_the_byte_limit_cuts_off_too_and_later_small_records_stay_dropped(pool: asyncpg.Pool) -> None:
    task = await _task(pool)
    limits = LogLimits(message_max_bytes=1024, task_max_records=100, task_max_bytes=10)
    writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), limits)

    await writer.write([task.batch("abcd", "abcd", "abcd", "a")])

    stored = await _logs(pool, task.execution_id)
    assert [row["message"] for row in stored] == ["abcd", "abcd", limits.dropped_notice(2)]


async def test_several_writers_at_once_keep_the_limit_and_count_every_dropped_record_once(
    pool: asyncpg.Pool,
) -> None:
    task = await _task(pool)
    batches = [task.batch(*(f"batch {b} line {n}" for n in range(3))) for b in range(6)]
    writers = [LogWriter(pool, LogIngestMetrics(CollectorRegistry()), FIVE_RECORDS) for _ in range(3)]

    # As if three log-ingest processes each had every batch delivered (a rebalance mid-way, say).
    await asyncio.gather(*(writer.write([batch]) for writer in writers for batch in batches))

    stored = await _logs(pool, task.execution_id)
    assert len(stored) == 6
    # The batches came in any order, so a record kept may be stamped later than the first one dropped: the
    # record that reports them still comes last.
    assert stored[-1]["id"] == dropped_notice_id(task.task_id) and stored[-1]["metadata"] == {DROPPED_KEY: 13}
    assert await pool.fetchval(
        "SELECT (records, dropped) = (5, 13) FROM task_log_usage WHERE task_key = $1", task.task_id
    )


async def test_records_that_name_no_task_count_against_their_execution(pool: asyncpg.Pool) -> None:
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    task = await _task(pool)
    bare = [TaskLogRecord(tenant_id=tenant_id, execution_id=task.execution_id, message=f"bare {n}") for n in range(7)]
    writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), FIVE_RECORDS)

    await writer.write(list(bare))

    stored = await _logs(pool, task.execution_id)
    assert len(stored) == 6
    assert stored[-1]["id"] == dropped_notice_id(task.execution_id)
    assert stored[-1]["message"] == FIVE_RECORDS.dropped_notice(2)


async def test_a_batch_of_tasks_far_from_and_near_their_limits_stores_each_as_its_limit_allows(
    pool: asyncpg.Pool,
) -> None:
    quiet, chatty = await _task(pool), await _task(pool)
    writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), FIVE_RECORDS)
    await writer.write([chatty.batch("a", "b", "c")])

    # One poll brings both: the quiet task has room for all, the chatty one for two more.
    await writer.write([quiet.batch("1", "2"), chatty.batch("d", "e", "f", "g"), quiet.batch("3")])

    assert [row["message"] for row in await _logs(pool, quiet.execution_id)] == ["1", "2", "3"]
    chatty_logs = await _logs(pool, chatty.execution_id)
    assert [row["message"] for row in chatty_logs[:5]] == ["a", "b", "c", "d", "e"]
    assert chatty_logs[5]["message"] == FIVE_RECORDS.dropped_notice(2) and len(chatty_logs) == 6
    usage = dict(await pool.fetch("SELECT task_key, records FROM task_log_usage"))
    assert usage == {quiet.task_id: 3, chatty.task_id: 5}
