"""Keeps the day partitions of ``task_logs``: the next days created ahead, whole days past retention dropped.

A pass that dropped a partition also forgets the per-task log counts (``task_log_usage``) of tasks that logged
nothing for as long, unless their execution is unfinished.

Retention of task logs is dropping partitions, not deleting rows (docs/architecture.md §6.2): a partition goes once
its whole range is older than the longest retention in effect (``FLOWLINE_EXECUTION_RETENTION``) and no unfinished
execution has a record in it (while archiving, ``FLOWLINE_ARCHIVE_DIR``: no execution still in the database, whose
archive is yet to be written from its records). Each change is a short transaction of its own under one advisory
lock, so any number of schedulers may run this loop: they make their changes one at a time, and each finds what
another did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta

import asyncpg
from flowline.db.log_partitions import (
    DEFAULT_PARTITION,
    LogPartition,
    create_day_partition,
    drop_partition,
    holds_present_execution,
    holds_unfinished_execution,
    list_log_partitions,
    lock_partition_maintenance,
    partition_exists,
    read_longest_set_retention,
)
from flowline.db.task_logs import delete_stale_usage
from flowline.runtime.loops import LoopService

from flowline_scheduler.metrics import SchedulerMetrics

logger = logging.getLogger(__name__)

# Days created ahead of today (UTC): records are never refused meanwhile (the default partition takes them),
# but there they could not be dropped whole.
DAYS_AHEAD = 3
INTERVAL_SECONDS = 300.0
# How long a change waits for its lock on task_logs before giving up until the next pass: statements on the
# table would queue behind the waiting lock.
LOCK_TIMEOUT = "2s"
USAGE_BATCH = 5000


def _now() -> datetime:
    return datetime.now(UTC)


class LogPartitionLoop(LoopService):
    """Creates the partitions of the next days and drops the partitions wholly past retention."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: SchedulerMetrics,
        *,
        default_retention_seconds: float,
        archiving: bool = False,
        interval_seconds: float = INTERVAL_SECONDS,
        days_ahead: int = DAYS_AHEAD,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        super().__init__("task-log-partitions", interval_seconds)
        self._pool = pool
        self._metrics = metrics
        self._default_retention = default_retention_seconds
        self._archiving = archiving
        self._days_ahead = days_ahead
        self._clock = clock

    async def run_once(self) -> None:
        """Create what is missing from today to ``days_ahead`` days on, then drop what retention allows."""
        today = self._clock().date()
        for offset in range(self._days_ahead + 1):
            await self._create(today + timedelta(days=offset))
        async with self._pool.acquire() as connection:
            partitions = await list_log_partitions(connection)
            # The longest retention in effect: a workflow or tenant may keep executions longer than the default.
            longest = max(self._default_retention, await read_longest_set_retention(connection) or 0)
        cutoff = self._clock() - timedelta(seconds=longest)
        dropped = False
        for partition in partitions:
            if partition.name != DEFAULT_PARTITION and partition.ends_at is not None and partition.ends_at <= cutoff:
                dropped = await self._drop(partition) or dropped
        if dropped:  # about once a day: finding them reads the whole table (an index would cost every update)
            while await delete_stale_usage(self._pool, before=cutoff, limit=USAGE_BATCH) == USAGE_BATCH:
                pass

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction holding the loop's advisory lock, so schedulers make their changes one at a time.

        Raises:
            asyncpg.LockNotAvailableError: a lock (this one, or one the change needs) was not granted in time.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            await lock_partition_maintenance(connection, lock_timeout=LOCK_TIMEOUT)
            yield connection

    async def _create(self, day: date) -> None:
        try:
            async with self._exclusive() as connection:
                if await create_day_partition(connection, day):
                    self._metrics.task_log_partitions.labels("created").inc()
                    logger.info("task log partition of %s created", day)
        except asyncpg.LockNotAvailableError:
            logger.warning("task log partition of %s: its lock was not granted in time, next pass", day)

    async def _drop(self, partition: LogPartition) -> bool:
        """Drop ``partition`` unless an execution it must keep logged in it; whether it was dropped.

        It keeps unfinished executions' records, and while archiving every present execution's: retention archives
        an execution's records before removing it.
        """
        holds_kept = holds_present_execution if self._archiving else holds_unfinished_execution
        try:
            async with self._exclusive() as connection:
                if not await partition_exists(connection, partition) or await holds_kept(connection, partition):
                    return False
                await drop_partition(connection, partition)
        except asyncpg.LockNotAvailableError:
            logger.warning("task log partition %s: its lock was not granted in time, next pass", partition.name)
            return False
        self._metrics.task_log_partitions.labels("dropped").inc()
        logger.info("task log partition %s dropped: its records are past retention", partition.name)
        return True
