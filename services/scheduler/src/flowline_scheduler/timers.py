"""Durable timers: fire every due timer once, as TimerFired on the control topic."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
from flowline.db.timers import fire_due_timers, read_next_timer_due
from flowline.kafka.outbox import OutboxPublisher, enqueue, outgoing
from flowline.messages import TimerMessage, TimerScheduled
from flowline.runtime.loops import LoopService
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Topics

from flowline_scheduler.metrics import SchedulerMetrics

FIRE_BATCH = 500


class TimerLoop(LoopService):
    """Fires due timers, then sleeps until the earliest pending one comes due.

    A TimerScheduled message wakes it exactly when a new timer comes due; the wake-ups' fallback covers one lost.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        outbox: OutboxPublisher,
        topics: Topics,
        metrics: SchedulerMetrics,
        interval_seconds: float,
        wakeups: Wakeups | None = None,
    ) -> None:
        super().__init__("timers", interval_seconds, wakeups=wakeups)
        self._pool = pool
        self._outbox = outbox
        self._topics = topics
        self._metrics = metrics

    async def run_once(self) -> None:
        """Fire due timers, a batch at a time, until none is due; then wait for the next one."""
        while await self.fire_due() == FIRE_BATCH:
            pass
        due_in = await read_next_timer_due(self._pool)
        if due_in is not None:  # one due already is held by another scheduler: look again soon
            self.due_in(due_in if due_in > 0 else self.interval_seconds)

    async def fire_due(self, limit: int = FIRE_BATCH) -> int:
        """Mark up to ``limit`` due timers fired and publish their TimerFired messages.

        Returns:
            How many timers fired.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            due = await fire_due_timers(connection, limit)
            rows = [outgoing(self._topics.control, timer.fired()) for timer in due]
            await enqueue(connection, rows)
        for timer in due:
            self._metrics.timers_fired.labels(timer.kind).inc()
            self._metrics.timer_lateness.labels(timer.kind).observe(max(timer.lateness, 0.0))
        await self._outbox.publish(rows)
        return len(due)

    async def handle_timer_message(self, message: TimerMessage) -> None:
        """Wake the loop when the announced timer comes due (the row itself is already committed)."""
        match message:
            case TimerScheduled():
                delay = (message.fire_at - datetime.now(UTC)).total_seconds()
                if delay <= 0:
                    self.wake()
                else:
                    asyncio.get_running_loop().call_later(delay, self.wake)
