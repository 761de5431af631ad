"""Crowded fire times: the runs of many schedules due at one instant, prepared before it and written at it.

Thousands of schedules firing at the same second (``* * * * *``, ``@hourly``) are more work than a scheduler
can do in the moment: building each execution (ids, events, messages) and sending it to PostgreSQL cost more
than the insert itself. So a few seconds before such a fire time this loop claims the schedules (row locks,
as the ordinary pass does), builds their runs and stages them in tables only its transaction sees; at the fire
time it inserts them all in one statement per transaction, records the schedules' bookkeeping and commits.
Nothing exists for anyone else before the fire time: the runs and the bookkeeping commit together after it,
and a crash before the commit leaves the schedules due for the ordinary pass. The run's idempotency key keeps
a run from starting twice, as everywhere. What this loop leaves (a schedule whose overlap policy must look at
its running run at the fire time, runs beyond what it claims) the ordinary pass fires once the locks go.

Between crowded fire times the loop sleeps: each look finds the next crowded fire time within the lead and the
loop's longest sleep, and the loop sleeps until that one is the lead ahead. A schedule created, resumed or
retimed (``SCHEDULES``) has it look again an interval later (thousands created one by one make it look once an
interval, not once each), and it looks at least every fallback. A crowd that forms without a notification
(schedules' next fire times moved on by the ordinary pass) is found by the next look: with its whole lead if it
is further ahead than the lead and the fallback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
from flowline.db.notifications import SCHEDULES
from flowline.db.schedules import (
    SchedulePass,
    busy_schedules,
    claim_schedules_due_at,
    next_crowded_fire_time,
    record_passes,
    run_request,
    set_last_runs,
    sleep_until,
)
from flowline.domain.batch_starts import prepare_executions
from flowline.domain.starting import (
    NewExecution,
    StartedExecution,
    WorkflowCache,
    execution_lock_order,
    insert_staged_executions,
    stage_executions,
)
from flowline.kafka.outbox import OutboxPublisher
from flowline.runtime.loops import LoopService
from flowline.runtime.outages import is_outage
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Topics

from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.schedules import Plan, batch_due_times, count_outcomes, plan, start_scheduled_runs

logger = logging.getLogger(__name__)

# A schedule's pass: the schedule, what it decided, where the schedule goes on, and the runs it missed.
_Pass = tuple[asyncpg.Record, Plan, datetime | None, int]

# A fire time with fewer schedules due is left to the ordinary pass, which starts that many in one batch.
CROWDED = 50
# Transactions that prepare one fire time, each on its share of the schedules: at the fire time their inserts
# run side by side, so PostgreSQL uses more than one core. Each holds a pooled connection until then.
AHEAD_TRANSACTIONS = 4
# Schedules one transaction claims at most; those beyond go to the ordinary pass.
AHEAD_BATCH = 2_500


class ScheduleAheadLoop(LoopService):
    """Prepares the runs of a crowded fire time ``lead_seconds`` ahead of it, and writes them at it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        metrics: SchedulerMetrics,
        interval_seconds: float,
        *,
        lead_seconds: float,
        crowded: int = CROWDED,
        wakeups: Wakeups | None = None,
    ) -> None:
        super().__init__("schedules-ahead", interval_seconds, wakeups=wakeups)
        if wakeups is not None:
            wakeups.subscribe(SCHEDULES, lambda: self.wake_in(self.interval_seconds))
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._metrics = metrics
        self._lead = timedelta(seconds=lead_seconds)
        self._crowded = crowded
        self._workflows = WorkflowCache()

    async def run_once(self) -> None:
        """Fire the next crowded fire time of the coming ``lead_seconds`` at its time, or sleep until one is due.

        Looking as far ahead as the loop may sleep (its fallback, or its interval while it cannot listen), it
        sleeps until the fire time it finds is the lead ahead.
        """
        horizon = self._lead + timedelta(seconds=self.wait_seconds())  # nothing due yet: the longest sleep
        found = await next_crowded_fire_time(self._pool, within=horizon, at_least=self._crowded)
        if found is None:
            return
        if (until := found.fire_time - found.now - self._lead) > timedelta(0):
            self.due_in(until.total_seconds())
            return
        # This process's monotonic clock counts down to the fire time by PostgreSQL's (checked again at the end).
        at = time.monotonic() + (found.fire_time - found.now).total_seconds()
        share = min(AHEAD_BATCH, math.ceil(found.schedules / AHEAD_TRANSACTIONS))
        async with asyncio.TaskGroup() as transactions:
            for _ in range(min(AHEAD_TRANSACTIONS, math.ceil(found.schedules / share))):
                transactions.create_task(self._fire_at(found.fire_time, at, share))
        self.due_in(0)  # the next crowded fire time may be within the lead already

    async def _fire_at(self, fire_time: datetime, at: float, limit: int) -> None:
        """Claim up to ``limit`` schedules due at ``fire_time``, prepare their runs, and start them at it.

        The bookkeeping is written ahead too, as if every staged run will start; the few that do not (their
        workflow changed, their key taken meanwhile) have their schedule's ``lastRun`` corrected after.
        """
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                passes, runs, staged = await self._prepare(connection, fire_time, limit)
                expected: list[NewExecution | None] = [None] * len(runs)
                for position, new in staged:
                    expected[position] = new
                ahead = _last_runs(runs, expected)
                await record_passes(
                    connection,
                    [
                        SchedulePass(schedule["id"], following, decided.buffered_for, ahead.get(schedule["id"]))
                        for schedule, decided, following, _ in passes
                    ],
                )
                await _wait_until(connection, fire_time, at)
                started, lateness = await self._insert(connection, runs, staged)
                if corrections := _corrections(passes, ahead, _last_runs(runs, started)):
                    await set_last_runs(connection, corrections)
        except Exception as err:
            if is_outage(err):
                raise
            # Rolled back: the schedules are due as they were, and the ordinary pass fires them run by run.
            logger.exception("the runs prepared for %s could not start together", fire_time)
            return
        for _, decided, _, missed in passes:
            count_outcomes(self._metrics, missed, decided)
        self._metrics.schedule_runs.labels("started").inc(len(lateness))
        for seconds in lateness:
            self._metrics.schedule_lateness.observe(seconds)
        await self._outbox.publish([row for run in started if run is not None for row in run.outbox])

    async def _prepare(
        self, connection: asyncpg.Connection, fire_time: datetime, limit: int
    ) -> tuple[list[_Pass], list[tuple[asyncpg.Record, datetime]], list[tuple[int, NewExecution]]]:
        """Claim the schedules, plan their passes as at ``fire_time``, and stage the runs they start.

        Answers the passes, the runs and the staged executions (each with its run's position), in the order
        they were staged. A schedule whose overlap policy sees a run still going is left alone (locked, but
        without a pass): whether that run still goes at the fire time decides, so the ordinary pass fires it.
        """
        # Only those due at the fire time: one due earlier is the ordinary pass's, which fires it at its own time.
        schedules = await claim_schedules_due_at(connection, fire_time, limit=limit)
        busy = await busy_schedules(connection, [one for one in schedules if one["overlap"] != "allow"])
        passes: list[_Pass] = []
        for schedule, (due, missed, following) in zip(schedules, batch_due_times(schedules, fire_time), strict=True):
            if schedule["id"] not in busy:
                passes.append((schedule, plan(schedule, due, False), following, missed))
        runs = [(schedule, instant) for schedule, decided, _, _ in passes for instant in decided.start]
        prepared = await prepare_executions(
            connection,
            self._topics,
            [run_request(schedule, instant) for schedule, instant in runs],
            workflows=self._workflows,
            created_at=fire_time,
        )
        staged = sorted(
            ((position, new) for position, new in enumerate(prepared) if new is not None),
            key=lambda item: execution_lock_order(item[1]),
        )
        await stage_executions(connection, [new for _, new in staged])
        return passes, runs, staged

    async def _insert(
        self,
        connection: asyncpg.Connection,
        runs: list[tuple[asyncpg.Record, datetime]],
        staged: list[tuple[int, NewExecution]],
    ) -> tuple[list[StartedExecution | None], list[float]]:
        """Insert the staged runs; those it could not (their workflow changed, their key taken) start alone.

        Answers each run (None: it could not start) and the lateness of each staged run it inserted.
        """
        started: list[StartedExecution | None] = [None] * len(runs)
        lateness: list[float] = []
        for (position, new), outcome in zip(staged, await insert_staged_executions(connection), strict=True):
            if outcome.current and outcome.created_at is not None:
                started[position] = StartedExecution(new.id, "pending", outcome.created_at, True, new.outbox)
                lateness.append(max((outcome.created_at - runs[position][1]).total_seconds(), 0.0))
        left = [position for position, run in enumerate(started) if run is None]
        alone = await start_scheduled_runs(
            self._pool, self._topics, self._workflows, self._metrics, [runs[position] for position in left]
        )
        for position, run in zip(left, alone, strict=True):
            started[position] = run
        return started, lateness


def _last_runs(
    runs: list[tuple[asyncpg.Record, datetime]], executions: Sequence[NewExecution | StartedExecution | None]
) -> dict[uuid.UUID, tuple[datetime, uuid.UUID]]:
    """Each schedule's latest run (its time and execution) among ``runs``, of those with an execution."""
    latest: dict[uuid.UUID, tuple[datetime, uuid.UUID]] = {}
    for (schedule, instant), execution in zip(runs, executions, strict=True):
        if execution is not None:  # a schedule's runs are in time order: its last one wins
            latest[schedule["id"]] = (instant, execution.id)
    return latest


def _corrections(
    passes: list[_Pass],
    ahead: dict[uuid.UUID, tuple[datetime, uuid.UUID]],
    actual: dict[uuid.UUID, tuple[datetime, uuid.UUID]],
) -> list[tuple[uuid.UUID, datetime | None, uuid.UUID | None]]:
    """The latest runs to set where the ones recorded ``ahead`` are not the ``actual`` ones.

    A schedule none of whose runs started gets back the latest run it had before the pass.
    """
    corrections: list[tuple[uuid.UUID, datetime | None, uuid.UUID | None]] = []
    for schedule, _, _, _ in passes:
        if (latest := actual.get(schedule["id"])) != ahead.get(schedule["id"]):
            before = (schedule["last_run_at"], schedule["last_execution_id"])
            corrections.append((schedule["id"], *(latest or before)))
    return corrections


async def _wait_until(connection: asyncpg.Connection, fire_time: datetime, at: float) -> None:
    """Return once PostgreSQL's clock has reached ``fire_time`` (expected at ``at`` on the monotonic clock)."""
    await asyncio.sleep(max(at - time.monotonic(), 0.0))
    await sleep_until(connection, fire_time)  # the clocks may differ by a little
