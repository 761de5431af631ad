"""The api's task log reads stay on indexes over the day partitions: each partition holding records is probed.

Asserts on the shape of the plans (EXPLAIN), never on timings.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from flowline.db.task_log_search import context_query, search_task_logs, search_task_logs_query
from flowline.db.task_logs import (
    LogFilters,
    count_task_logs_query,
    download_page_query,
    latest_task_logs_query,
    list_task_logs_query,
)

from tests.support import analyze_every_row, bulk_fill

EXECUTIONS = 200
TASKS_PER_EXECUTION = 5
RECORDS_PER_TASK_AND_DAY = 20
DAYS = 3  # today (the partition the migration began with) and the next two day partitions


async def _fill(pool: asyncpg.Pool) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Records of many tasks over three partitions; the tenant, one execution and one of its tasks."""
    tenant_id: uuid.UUID = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    await bulk_fill(
        pool,
        """
        INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp)
        SELECT gen_random_uuid(), $1, uuid_in(lpad(to_hex(e), 32, '0')::cstring),
            uuid_in(lpad(to_hex(e * 100 + t), 32, '0')::cstring), 's' || t, 1,
            (ARRAY['DEBUG', 'INFO', 'WARN', 'ERROR'])[1 + n % 4], 'line ' || n,
            date_trunc('day', now()) + d * interval '1 day' + n * interval '1 minute'
        FROM generate_series(1, $2) e, generate_series(1, $3) t, generate_series(0, $4 - 1) d, generate_series(1, $5) n
        """,
        tenant_id,
        EXECUTIONS,
        TASKS_PER_EXECUTION,
        DAYS,
        RECORDS_PER_TASK_AND_DAY,
    )
    await analyze_every_row(pool, "ANALYZE task_logs")
    execution_id = uuid.UUID(int=7)
    return tenant_id, execution_id, uuid.UUID(int=7 * 100 + 3)


async def _plan(pool: asyncpg.Pool, statement: list[Any]) -> str:
    sql, *args = statement
    rows = await pool.fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize(
    "read",
    [
        "task-page",
        "task-page-level",
        "task-count",
        "execution-page",
        "execution-page-step-level",
        "execution-count",
        "execution-latest",
        "execution-download",
        "task-search",
        "execution-search-attempt",
        "execution-search-after",
        "search-context",
    ],
)
async def test_log_reads_probe_each_partitions_index(pool: asyncpg.Pool, read: str) -> None:
    tenant_id, execution_id, task_id = await _fill(pool)
    by_task = LogFilters(tenant_id=tenant_id, task_id=task_id)
    by_execution = LogFilters(tenant_id=tenant_id, execution_id=execution_id)
    statements = {
        "task-page": list_task_logs_query(by_task, limit=50, offset=0),
        "task-page-level": list_task_logs_query(
            LogFilters(tenant_id=tenant_id, task_id=task_id, levels=["WARN", "ERROR"]), limit=50, offset=0
        ),
        "task-count": count_task_logs_query(by_task),
        "execution-page": list_task_logs_query(by_execution, limit=1000, offset=0),
        "execution-page-step-level": list_task_logs_query(
            LogFilters(tenant_id=tenant_id, execution_id=execution_id, levels=["ERROR"], step_id="s2"),
            limit=1000,
            offset=0,
        ),
        "execution-count": count_task_logs_query(by_execution),
        "execution-latest": latest_task_logs_query(tenant_id, execution_id, 100),
        "execution-download": download_page_query(
            tenant_id,
            execution_id,
            after=(datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0)),
            max_rows=1_000,
            max_bytes=1_048_576,
        ),
        "task-search": search_task_logs_query(by_task, "line 1", after=None, limit=50, scan=20_000),
        "execution-search-attempt": search_task_logs_query(
            LogFilters(tenant_id=tenant_id, execution_id=execution_id, attempt=1),
            "line",
            after=None,
            limit=50,
            scan=20_000,
        ),
        "execution-search-after": search_task_logs_query(
            by_execution, "line", after=(datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0)), limit=50, scan=20_000
        ),
    }
    if read == "search-context":
        found = await search_task_logs(pool, by_execution, "line 1", after=None, limit=50, scan=20_000)
        statements[read] = context_query(by_execution, "line 1", found.matches, 20)

    plan = await _plan(pool, statements[read])

    holding = {row[0] for row in await pool.fetch("SELECT DISTINCT tableoid::regclass::text FROM task_logs")}
    assert len(holding) == DAYS
    scanned = set(re.findall(r"Seq Scan on (\w+)", plan))
    assert not scanned & holding, plan  # (an empty partition, such as a day ahead, costs nothing to scan)
    for partition in holding:
        assert re.search(rf"Index (Only )?Scan (Backward )?using \w+ on {partition}\b", plan) or re.search(
            rf"Bitmap Heap Scan on {partition}\b", plan
        ), plan
