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
from flowline.db.notifications import SCHEDULES
from flowline.db.schedules import (
    SchedulePass,
    active_runs,
    busy_schedules,
    claim_due_schedules,
    claim_released_buffers,
    clear_buffered_run,
    read_clock,
    read_schedules_ahead,
    record_passes,
    record_run,
    start_runs,
    timing_of,
)
from flowline.domain.commands import request_cancel
from flowline.domain.schedules import fire_times
from flowline.domain.starting import StartedExecution, WorkflowCache
from flowline.errors import Conflict, FlowlineError
from flowline.kafka.outbox import OutboxPublisher, OutboxRow
from flowline.runtime.loops import LoopService
from flowline.runtime.outages import is_outage
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Topics

from flowline_scheduler.metrics import SchedulerMetrics

logger = logging.getLogger(__name__)

SCHEDULE_BATCH = 50
# Transactions that fire schedules at once, each on its own batch (SKIP LOCKED keeps them apart): a batch costs a
# few round trips to PostgreSQL, so one transaction at a time would leave the scheduler waiting on the network.
FIRING_WORKERS = 4
# A due run this late is on time even with a catch-up window of 0: the loop polls, and a pass takes a while.
ON_TIME = timedelta(seconds=5)
# One pass starts at most this many runs of one schedule (a wide catch-up window after long downtime): the rest
# stay due for the next pass, so that a transaction stays short.
MAX_RUNS_PER_PASS = 100
# Counting the times missed during a very long downtime stops here: the metric is for noticing, not accounting.
MAX_COUNTED_MISSES = 100_000
# What a cron schedule's due times depend on (``due_times``), besides the time of the pass.
_CRON_TIMING_COLUMNS = ("cron", "timezone", "start_at", "end_at", "next_run_at", "catchup_window_ms")


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


def batch_due_times(
    schedules: list[asyncpg.Record], now: datetime
) -> list[tuple[list[datetime], int, datetime | None]]:
    """``due_times`` of each schedule of a batch.

    Computed once for the cron schedules that share their timing and came due together (many fire hourly or
    daily on the hour): a cron's fire times cost far more than the rest of a schedule's pass.
    """
    shared: dict[tuple[Any, ...], tuple[list[datetime], int, datetime | None]] = {}
    found: list[tuple[list[datetime], int, datetime | None]] = []
    for schedule in schedules:
        if schedule["cron"] is None:  # an interval's times are cheap, and its own (from its anchor)
            found.append(due_times(schedule, now))
            continue
        key = tuple(schedule[column] for column in _CRON_TIMING_COLUMNS)
        if key not in shared:
            shared[key] = due_times(schedule, now)
        due, missed, following = shared[key]
        found.append((list(due), missed, following))
    return found


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


async def start_scheduled_runs(
    pool: asyncpg.Pool,
    topics: Topics,
    workflows: WorkflowCache,
    metrics: SchedulerMetrics,
    runs: list[tuple[asyncpg.Record, datetime]],
) -> list[StartedExecution | None]:
    """Start the runs (schedule, fire time) in one statement of their own; each run, or None if it could not.

    A run that cannot start (its workflow gone, say) is counted and spoils no other. A run started before
    (by another replica, before a crash, or by a backfill) comes back without outbox rows.
    """
    if not runs:
        return []
    results = await start_runs(pool, topics, runs, workflows=workflows)
    # This process's clock: the database's would cost a round trip.
    inserted_at = datetime.now(UTC)
    started: list[StartedExecution | None] = []
    for (schedule, scheduled_for), result in zip(runs, results, strict=True):
        if isinstance(result, Exception):
            if is_outage(result):
                raise result
            if isinstance(result, FlowlineError):
                logger.warning("schedule %s could not start its run for %s: %s", schedule["id"], scheduled_for, result)
            else:  # a bug must not stall the schedule (and its batch) at this fire time forever
                logger.error(
                    "schedule %s could not start its run for %s", schedule["id"], scheduled_for, exc_info=result
                )
            metrics.schedule_runs.labels("failed").inc()
            started.append(None)
        elif not result.created:
            metrics.schedule_runs.labels("already_started").inc()
            started.append(result)
        else:
            metrics.schedule_runs.labels("started").inc()
            metrics.schedule_lateness.observe(max((inserted_at - scheduled_for).total_seconds(), 0.0))
            started.append(result)
    return started


def count_outcomes(metrics: SchedulerMetrics, missed: int, decided: Plan) -> None:
    """Count a schedule's pass: its runs missed (beyond the catch-up window), skipped and buffered."""
    for outcome, count in (("missed", missed), ("skipped", decided.skipped), ("buffered", decided.buffered)):
        if count:
            metrics.schedule_runs.labels(outcome).inc(count)


class ScheduleLoop(LoopService):
    """Starts the runs of due schedules, a batch of schedules per short transaction.

    Due schedules are claimed with ``FOR UPDATE SKIP LOCKED``, so replicas share them and never fire one
    twice at once; the run, its bookkeeping (``next_run_at``, ``lastRun``) and its outbox rows commit together.
    The run's idempotency key (schedule id and fire time) makes a run start once even if all that were lost
    and done again, or a backfill started it already. Between passes it sleeps until the earliest schedule is
    due, woken sooner by a schedule created, resumed or retimed (``wakeups``); while a buffered run waits for its
    schedule's previous run to finish, it looks every ``interval_seconds``.
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
        wakeups: Wakeups | None = None,
    ) -> None:
        super().__init__("schedules", interval_seconds, wakeups=wakeups, channels=(SCHEDULES,) if wakeups else ())
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._metrics = metrics
        self._batch_size = batch_size
        # Each worker holds a pooled connection while its runs' insert takes another: leave the pool most.
        self._workers = max(1, min(workers, pool.get_max_size() // 4))
        self._workflows = WorkflowCache()

    async def run_once(self) -> None:
        """Fire every due schedule, start the released buffered runs, and note when the next schedule is due."""
        # One batch first: a pass rarely finds more, and the other workers would each look for nothing.
        if await self.fire_due() >= self._batch_size:
            async with asyncio.TaskGroup() as workers:
                for _ in range(self._workers):
                    workers.create_task(self._fire_all_due())
        while await self.release_buffered() >= self._batch_size:
            pass
        ahead = await read_schedules_ahead(self._pool)
        if ahead.buffered:  # no notification says when the previous run finishes
            self.due_in(self.interval_seconds)
        if ahead.due_in is not None:  # one due already is held by another scheduler: look again soon
            self.due_in(ahead.due_in if ahead.due_in > 0 else self.interval_seconds)

    async def _fire_all_due(self) -> None:
        # Each batch's outbox rows go out while the next batch fires: the broker's answer need not hold it up.
        publishing: list[asyncio.Task[bool]] = []
        try:
            while True:
                fired, rows = await self._fire_batch()
                publishing.append(asyncio.create_task(self._outbox.publish(rows)))
                if fired < self._batch_size:
                    break
        finally:
            await asyncio.gather(*publishing)

    async def fire_due(self) -> int:
        """Fire the next batch of due schedules that no other scheduler holds, and publish; how many there were."""
        fired, rows = await self._fire_batch()
        await self._outbox.publish(rows)
        return fired

    async def _fire_batch(self) -> tuple[int, list[OutboxRow]]:
        """Fire the next batch of due schedules that no other scheduler holds: how many, and the rows to publish.

        Set-based: a batch costs the same few statements however many schedules it holds (claim, which of them
        are busy, the runs' insert, the bookkeeping). The runs' insert commits by itself, before the schedules'
        bookkeeping: a crash in between leaves runs whose schedules are due again, and the next pass finds
        each one started (its idempotency key) and only does the bookkeeping.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            now = await read_clock(connection)
            schedules = await claim_due_schedules(connection, now=now, limit=self._batch_size)
            busy = await busy_schedules(connection, [one for one in schedules if one["overlap"] != "allow"])
            rows: list[OutboxRow] = []
            passes: list[tuple[asyncpg.Record, Plan, datetime | None]] = []
            for schedule, (due, missed, following) in zip(schedules, batch_due_times(schedules, now), strict=True):
                decided = plan(schedule, due, schedule["id"] in busy)
                if decided.cancel_active:
                    rows.extend(await self._cancel_active(connection, schedule))
                count_outcomes(self._metrics, missed, decided)
                passes.append((schedule, decided, following))
            runs = [(schedule, instant) for schedule, decided, _ in passes for instant in decided.start]
            last_runs: dict[uuid.UUID, tuple[datetime, uuid.UUID]] = {}
            started = await start_scheduled_runs(self._pool, self._topics, self._workflows, self._metrics, runs)
            for (schedule, instant), run in zip(runs, started, strict=True):
                if run is not None:  # a schedule's runs are in time order: its last one wins
                    rows.extend(run.outbox)
                    last_runs[schedule["id"]] = (instant, run.id)
            if passes:
                await record_passes(
                    connection,
                    [
                        SchedulePass(schedule["id"], following, decided.buffered_for, last_runs.get(schedule["id"]))
                        for schedule, decided, following in passes
                    ],
                )
        return len(schedules), rows

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

    async def release_buffered(self) -> int:
        """Start the waiting runs (``buffer_one``) of schedules whose previous run has finished; how many."""
        async with self._pool.acquire() as connection, connection.transaction():
            # Other schedulers fire a schedule only under its row lock, so no run starts between this check and
            # the start below.
            schedules = await claim_released_buffers(connection, limit=self._batch_size)
            rows: list[OutboxRow] = []
            runs = [(schedule, schedule["buffered_for"]) for schedule in schedules]
            started = await start_scheduled_runs(self._pool, self._topics, self._workflows, self._metrics, runs)
            for schedule, run in zip(schedules, started, strict=True):
                if run is not None:
                    rows.extend(run.outbox)
                    await record_run(connection, schedule["id"], schedule["buffered_for"], run.id)
                await clear_buffered_run(connection, schedule["id"])
        await self._outbox.publish(rows)
        return len(schedules)
