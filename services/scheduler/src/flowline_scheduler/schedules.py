"""Schedules: the scheduler starts the runs of due schedules, applying overlap policies and catch-up."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from flowline.db.schedules import (
    active_runs,
    claim_due_schedules,
    claim_released_buffers,
    clear_buffered_run,
    read_clock,
    record_pass,
    record_run,
    start_run,
    timing_of,
)
from flowline.domain.commands import request_cancel
from flowline.domain.schedules import fire_times
from flowline.domain.starting import ExecutionInserts, StartedExecution, WorkflowCache
from flowline.errors import Conflict, FlowlineError
from flowline.kafka.outbox import OutboxPublisher, OutboxRow
from flowline.runtime.loops import LoopService
from flowline.runtime.outages import OUTAGE_ERRORS
from flowline.settings import Topics

from flowline_scheduler.metrics import SchedulerMetrics

logger = logging.getLogger(__name__)

SCHEDULE_BATCH = 50
# Transactions that fire schedules at once, each on its own batch (SKIP LOCKED keeps them apart): a run costs a
# few round trips to PostgreSQL, so one transaction at a time would leave the scheduler waiting on the network.
FIRING_WORKERS = 4
# A due run this late is on time even with a catch-up window of 0: the loop polls, and a pass takes a while.
ON_TIME = timedelta(seconds=5)
# One pass starts at most this many runs of one schedule (a wide catch-up window after long downtime): the rest
# stay due for the next pass, so that a transaction stays short.
MAX_RUNS_PER_PASS = 100
# Counting the times missed during a very long downtime stops here: the metric is for noticing, not accounting.
MAX_COUNTED_MISSES = 100_000


@dataclass(slots=True)
class Plan:
    """What one pass over a schedule decided: the runs to start, and what becomes of the others."""

    buffered_for: datetime | None  # the run left waiting for the running one (buffer_one), after this pass
    start: list[datetime] = field(default_factory=list)
    skipped: int = 0
    buffered: int = 0  # runs newly left waiting
    cancel_active: bool = False


def due_times(schedule: Mapping[str, Any], now: datetime) -> tuple[list[datetime], int, datetime | None]:
    """The due fire times within the catch-up window, how many fell outside it, and where the next pass goes on.

    The due times run from ``next_run_at`` up to ``now``, oldest first, at most ``MAX_RUNS_PER_PASS`` of them.
    """
    tolerance = max(timedelta(milliseconds=schedule["catchup_window_ms"]), ON_TIME)
    due: list[datetime] = []
    missed = 0
    following: datetime | None = None
    for instant in fire_times(timing_of(schedule), schedule["next_run_at"] - timedelta(microseconds=1)):
        if instant > now or len(due) >= MAX_RUNS_PER_PASS:
            following = instant
            break
        if now - instant <= tolerance:
            due.append(instant)
        elif missed < MAX_COUNTED_MISSES:
            missed += 1
        else:  # counted enough: jump to the start of the window
            following = now - tolerance
            break
    return due, missed, following


def plan(schedule: Mapping[str, Any], due: list[datetime], busy: bool) -> Plan:
    """What to do with the ``due`` runs under the schedule's overlap policy; ``busy``: a run is still going."""
    decided = Plan(buffered_for=schedule["buffered_for"])
    policy = schedule["overlap"]
    if policy == "allow":
        decided.start = list(due)
        return decided
    if policy == "cancel_previous":
        # Each run would cancel the one before: only the latest is worth starting.
        decided.start = due[-1:]
        decided.skipped = len(due) - len(decided.start)
        decided.cancel_active = busy and bool(due)
        return decided
    if decided.buffered_for is not None and not busy:  # its run finished since: the waiting run goes first
        decided.start.append(decided.buffered_for)
        decided.buffered_for, busy = None, True
    for instant in due:
        if not busy:
            decided.start.append(instant)
            busy = True
        elif policy == "buffer_one" and decided.buffered_for is None:
            decided.buffered_for = instant
            decided.buffered += 1
        else:
            decided.skipped += 1
    return decided


class ScheduleLoop(LoopService):
    """Starts the runs of due schedules, a batch of schedules per short transaction.

    Due schedules are claimed with ``FOR UPDATE SKIP LOCKED``, so replicas share them and never fire one
    twice at once; the run, its bookkeeping (``next_run_at``, ``lastRun``) and its outbox rows commit together.
    The run's idempotency key (schedule id and fire time) makes a run start once even if all that were lost
    and done again, or a backfill started it already.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        metrics: SchedulerMetrics,
        interval_seconds: float,
        batch_size: int = SCHEDULE_BATCH,
        workers: int = FIRING_WORKERS,
    ) -> None:
        super().__init__("schedules", interval_seconds)
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._metrics = metrics
        self._batch_size = batch_size
        # Each worker holds a pooled connection while its runs' reads and inserts take others: leave them most.
        self._workers = max(1, min(workers, pool.get_max_size() // 4))
        self._workflows = WorkflowCache()
        self._inserts = ExecutionInserts(pool, max_executions=batch_size * workers)

    async def run_once(self) -> None:
        """Fire every due schedule, then start the buffered runs whose previous run has finished."""
        async with asyncio.TaskGroup() as workers:
            for _ in range(self._workers):
                workers.create_task(self._fire_all_due())
        while await self.release_buffered() >= self._batch_size:
            pass

    async def _fire_all_due(self) -> None:
        while await self.fire_due() >= self._batch_size:
            pass

    async def fire_due(self) -> int:
        """Fire the next batch of due schedules that no other scheduler holds; how many there were.

        The batch's runs start together, so that their executions go out in one statement; the schedules'
        bookkeeping commits after them. A crash in between leaves runs whose schedules are due again: the
        next pass finds each one started (its idempotency key) and only does the bookkeeping.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            now = await read_clock(connection)
            schedules = await claim_due_schedules(connection, now=now, limit=self._batch_size)
            rows: list[OutboxRow] = []
            passes: list[tuple[asyncpg.Record, Plan, datetime | None]] = []
            for schedule in schedules:
                due, missed, following = due_times(schedule, now)
                busy = schedule["overlap"] != "allow" and bool(await active_runs(connection, schedule))
                decided = plan(schedule, due, busy)
                if decided.cancel_active:
                    rows.extend(await self._cancel_active(connection, schedule))
                self._count(missed, decided)
                passes.append((schedule, decided, following))
            runs = [(schedule, instant) for schedule, decided, _ in passes for instant in decided.start]
            started = await asyncio.gather(*(self._start(schedule, instant) for schedule, instant in runs))
            last_runs: dict[uuid.UUID, tuple[datetime, uuid.UUID]] = {}
            for (schedule, instant), run in zip(runs, started, strict=True):
                if run is not None:  # a schedule's runs are in time order: its last one wins
                    rows.extend(run.outbox)
                    last_runs[schedule["id"]] = (instant, run.id)
            for schedule, decided, following in passes:
                await self._record(connection, schedule, decided, following, last_runs.get(schedule["id"]))
        await self._outbox.publish(rows)
        return len(schedules)

    async def _record(
        self,
        connection: asyncpg.Connection,
        schedule: asyncpg.Record,
        decided: Plan,
        following: datetime | None,
        last_run: tuple[datetime, uuid.UUID] | None,
    ) -> None:
        """A schedule's bookkeeping after a pass."""
        await record_pass(
            connection, schedule["id"], next_run_at=following, buffered_for=decided.buffered_for, last_run=last_run
        )

    def _count(self, missed: int, decided: Plan) -> None:
        for outcome, count in (("missed", missed), ("skipped", decided.skipped), ("buffered", decided.buffered)):
            if count:
                self._metrics.schedule_runs.labels(outcome).inc(count)

    async def _cancel_active(self, connection: asyncpg.Connection, schedule: asyncpg.Record) -> list[OutboxRow]:
        """Cancel the schedule's unfinished runs, as ``POST /executions/{id}/cancel`` does."""
        rows: list[OutboxRow] = []
        for execution_id in await active_runs(connection, schedule):
            try:
                async with connection.transaction():
                    rows.extend(
                        await request_cancel(
                            connection,
                            self._topics,
                            tenant_id=schedule["tenant_id"],
                            execution_id=execution_id,
                            reason="a newer run of its schedule started (overlap: cancel_previous)",
                            requested_by=f"schedule:{schedule['id']}",
                        )
                    )
            except Conflict:
                pass  # it finished meanwhile
        return rows

    async def _start(self, schedule: asyncpg.Record, scheduled_for: datetime) -> StartedExecution | None:
        """Start one run, its execution inserted with those of the runs starting meanwhile (one statement).

        A run that cannot start (its workflow gone, say) is counted and spoils no other.

        Returns:
            The run (without outbox rows when it had been started before), or None when it could not start.
        """
        try:
            started = await start_run(
                self._pool,
                self._topics,
                schedule,
                scheduled_for,
                workflows=self._workflows,
                inserting=self._inserts.insert,
            )
        except OUTAGE_ERRORS:
            raise
        except FlowlineError as err:
            logger.warning("schedule %s could not start its run for %s: %s", schedule["id"], scheduled_for, err)
            self._metrics.schedule_runs.labels("failed").inc()
            return None
        except Exception:  # a bug must not stall the schedule (and its batch) at this fire time forever
            logger.exception("schedule %s could not start its run for %s", schedule["id"], scheduled_for)
            self._metrics.schedule_runs.labels("failed").inc()
            return None
        if not started.created:  # started before: by another replica, before a crash, or by a backfill
            self._metrics.schedule_runs.labels("already_started").inc()
            return started
        self._metrics.schedule_runs.labels("started").inc()
        # This process's clock: the database's would cost a round trip per run.
        lateness = (datetime.now(UTC) - scheduled_for).total_seconds()
        self._metrics.schedule_lateness.observe(max(lateness, 0.0))
        return started

    async def release_buffered(self) -> int:
        """Start the waiting runs (``buffer_one``) of schedules whose previous run has finished; how many."""
        async with self._pool.acquire() as connection, connection.transaction():
            # Other schedulers fire a schedule only under its row lock, so no run starts between this check and
            # the start below.
            schedules = await claim_released_buffers(connection, limit=self._batch_size)
            rows: list[OutboxRow] = []
            for schedule in schedules:
                if (started := await self._start(schedule, schedule["buffered_for"])) is not None:
                    rows.extend(started.outbox)
                    await record_run(connection, schedule["id"], schedule["buffered_for"], started.id)
                await clear_buffered_run(connection, schedule["id"])
        await self._outbox.publish(rows)
        return len(schedules)
