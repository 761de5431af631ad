"""The scheduler's task log partitions: days created ahead, and whole days dropped once past retention."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from flowline.db.log_partitions import (
    DEFAULT_PARTITION,
    create_day_partition,
    day_partition_name,
    list_log_partitions,
    start_of_day,
)
from flowline.settings import ConfigurationError, Settings, retention_setting
from flowline_scheduler.log_partitions import LogPartitionLoop
from flowline_scheduler.metrics import SchedulerMetrics
from prometheus_client import CollectorRegistry

from tests.support import define_and_start

THIRTY_DAYS = 30 * 86400.0
TODAY = datetime.now(UTC).date()


def _loop(pool: asyncpg.Pool, metrics: SchedulerMetrics, *, on: date = TODAY) -> LogPartitionLoop:
    return LogPartitionLoop(
        pool,
        metrics,
        default_retention_seconds=THIRTY_DAYS,
        clock=lambda: start_of_day(on) + timedelta(hours=12),
    )


async def _names(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as connection:
        return [partition.name for partition in await list_log_partitions(connection)]


async def _without_the_first_partition(pool: asyncpg.Pool) -> None:
    """A database partitioned long ago: the table from before partitioning (empty here) is gone."""
    for name in await _names(pool):
        if name.startswith("task_logs_until_"):
            await pool.execute(f"DROP TABLE {name}")


async def _log(pool: asyncpg.Pool, execution_id: uuid.UUID, at: datetime) -> None:
    await pool.execute(
        "INSERT INTO task_logs (id, tenant_id, execution_id, level, message, timestamp) "
        "SELECT $1, tenant_id, id, 'INFO', 'hello', $3 FROM executions WHERE id = $2",
        uuid.uuid4(),
        execution_id,
        at,
    )


async def test_the_next_days_are_created_ahead_once_however_many_schedulers_run(pool: asyncpg.Pool) -> None:
    registry = CollectorRegistry()
    metrics = SchedulerMetrics(registry)
    before = await _names(pool)
    assert DEFAULT_PARTITION in before

    await _loop(pool, metrics).start(loops=1)
    assert await _names(pool) == before  # the migration made the days up to three ahead

    later = TODAY + timedelta(days=10)
    await asyncio.gather(*(_loop(pool, metrics, on=later).start(loops=1) for _ in range(3)))

    after = await _names(pool)
    assert {day_partition_name(later + timedelta(days=n)) for n in range(4)} <= set(after)
    assert len(after) == len(set(after)) == len(before) + 4
    assert registry.get_sample_value("flowline_task_log_partitions_total", {"change": "created"}) == 4


async def test_a_day_wholly_past_retention_is_dropped_unless_an_unfinished_execution_logged_in_it(
    pool: asyncpg.Pool, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await _without_the_first_partition(pool)
    finished = await define_and_start(
        pool, settings, "demo.old", {"steps": [{"id": "a", "type": "sleep", "duration": "1s"}]}, {}
    )
    running = await define_and_start(
        pool, settings, "demo.old", {"steps": [{"id": "a", "type": "sleep", "duration": "1s"}]}, {}
    )
    await pool.execute("UPDATE executions SET status = 'completed' WHERE id = $1", finished.id)
    await pool.execute("UPDATE executions SET status = 'running' WHERE id = $1", running.id)
    old, older_but_running, recent = (TODAY - timedelta(days=days) for days in (40, 39, 20))
    async with pool.acquire() as connection, connection.transaction():
        for day in (old, older_but_running, recent):
            assert await create_day_partition(connection, day)
    await _log(pool, finished.id, start_of_day(old) + timedelta(hours=3))
    await _log(pool, finished.id, start_of_day(older_but_running) + timedelta(hours=1))
    await _log(pool, running.id, start_of_day(older_but_running) + timedelta(hours=2))
    await _log(pool, finished.id, start_of_day(recent))
    # The per-task counts of tasks quiet since before the cut-off go with the pass that dropped a partition,
    # unless their execution is unfinished.
    quiet_finished, quiet_running, recent_task = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await pool.executemany(
        "INSERT INTO task_log_usage (task_key, tenant_id, execution_id, records, updated_at) "
        "SELECT $1, tenant_id, id, 3, $3 FROM executions WHERE id = $2",
        [
            (quiet_finished, finished.id, start_of_day(old)),
            (quiet_running, running.id, start_of_day(old)),
            (recent_task, finished.id, start_of_day(recent)),
        ],
    )
    registry = CollectorRegistry()
    metrics = SchedulerMetrics(registry)

    with caplog.at_level(logging.WARNING):
        await asyncio.gather(*(_loop(pool, metrics).start(loops=1) for _ in range(3)))  # three schedulers at once
    assert not caplog.records  # none failed on a partition another had dropped

    names = await _names(pool)
    assert day_partition_name(old) not in names
    assert {day_partition_name(older_but_running), day_partition_name(recent)} <= set(names)
    assert registry.get_sample_value("flowline_task_log_partitions_total", {"change": "dropped"}) == 1
    kept = await pool.fetch("SELECT execution_id, timestamp FROM task_logs ORDER BY timestamp")
    assert [row["timestamp"].date() for row in kept] == [older_but_running, older_but_running, recent]
    usage = {row["task_key"] for row in await pool.fetch("SELECT task_key FROM task_log_usage")}
    assert usage == {quiet_running, recent_task}

    await pool.execute("UPDATE executions SET status = 'failed' WHERE id = $1", running.id)
    await _loop(pool, metrics).start(loops=1)
    assert day_partition_name(older_but_running) not in await _names(pool)
    assert await pool.fetchval("SELECT count(*) FROM task_logs") == 1
    assert {row["task_key"] for row in await pool.fetch("SELECT task_key FROM task_log_usage")} == {recent_task}


async def test_while_archiving_a_day_stays_until_the_executions_that_logged_in_it_are_gone(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    await _without_the_first_partition(pool)
    finished = await define_and_start(
        pool, settings, "demo.old", {"steps": [{"id": "a", "type": "sleep", "duration": "1s"}]}, {}
    )
    await pool.execute("UPDATE executions SET status = 'completed' WHERE id = $1", finished.id)
    old = TODAY - timedelta(days=40)
    async with pool.acquire() as connection, connection.transaction():
        assert await create_day_partition(connection, old)
    await _log(pool, finished.id, start_of_day(old) + timedelta(hours=3))
    metrics = SchedulerMetrics(CollectorRegistry())
    archiving = LogPartitionLoop(
        pool,
        metrics,
        default_retention_seconds=THIRTY_DAYS,
        archiving=True,
        clock=lambda: start_of_day(TODAY) + timedelta(hours=12),
    )

    await archiving.start(loops=1)
    kept = day_partition_name(old) in await _names(pool)
    await pool.execute("DELETE FROM executions WHERE id = $1", finished.id)  # retention archived and removed it
    await archiving.start(loops=1)

    assert kept  # its archive is still to be written from these records
    assert day_partition_name(old) not in await _names(pool)


async def test_a_tenants_default_retention_longer_than_the_servers_keeps_its_days(pool: asyncpg.Pool) -> None:
    await _without_the_first_partition(pool)
    old = TODAY - timedelta(days=40)
    async with pool.acquire() as connection, connection.transaction():
        assert await create_day_partition(connection, old)
    await pool.execute("UPDATE tenants SET retention_seconds = $1 WHERE slug = 'dev'", 60 * 86400)
    metrics = SchedulerMetrics(CollectorRegistry())

    await _loop(pool, metrics).start(loops=1)
    kept = day_partition_name(old) in await _names(pool)
    await pool.execute("UPDATE tenants SET retention_seconds = NULL WHERE slug = 'dev'")
    await _loop(pool, metrics).start(loops=1)

    assert kept
    assert day_partition_name(old) not in await _names(pool)


async def test_records_a_new_day_finds_in_the_default_partition_move_into_it(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    started = await define_and_start(
        pool, settings, "demo.ahead", {"steps": [{"id": "a", "type": "sleep", "duration": "1s"}]}, {}
    )
    far = TODAY + timedelta(days=30)
    await _log(pool, started.id, start_of_day(far) + timedelta(minutes=5))  # a producer's clock far ahead
    assert await pool.fetchval(f"SELECT count(*) FROM {DEFAULT_PARTITION}") == 1

    await _loop(pool, SchedulerMetrics(CollectorRegistry()), on=far - timedelta(days=2)).start(loops=1)

    assert await pool.fetchval(f"SELECT count(*) FROM {DEFAULT_PARTITION}") == 0
    assert await pool.fetchval(f"SELECT count(*) FROM {day_partition_name(far)}") == 1


def test_a_retention_that_is_not_a_duration_stops_the_scheduler() -> None:
    assert retention_setting(Settings(execution_retention="12h"), "execution_retention") == 43_200
    for bad in ("forever", "-1d", "0s"):
        with pytest.raises(ConfigurationError, match="FLOWLINE_EXECUTION_RETENTION"):
            retention_setting(Settings(execution_retention=bad), "execution_retention")
