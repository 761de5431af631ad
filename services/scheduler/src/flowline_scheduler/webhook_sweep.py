"""The safety net under the events topic: deliveries derived from ``execution_events`` rows that have none.

Deliveries normally come from the events topic (``webhook_events``). An event published and removed from the
outbox is gone from that path if the broker then loses it; its row in ``execution_events`` stays. The sweep
walks those rows with a cursor, a grace period behind now (so the topic path wins when it works), and inserts
the deliveries an event calls for and lacks, through the same ``deliveries_for`` and the same unique key: what
either path inserts, the other inserts again as nothing. Each pass is bounded (a number of events and a span of
time) and held by one scheduler at a time; with no enabled webhook, a pass is one small statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg
from flowline.db.webhook_sweep import (
    BEFORE_ALL,
    PassedEvent,
    SweepPosition,
    SweepWindow,
    advance_sweep,
    claim_sweep_window,
    list_passed_events,
)
from flowline.db.webhooks import EnabledWebhook, enabled_webhooks, insert_deliveries, list_event_subjects
from flowline.messages import ExecutionEvent
from flowline.runtime.loops import LoopService

from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.webhook_events import deliveries_for

# How much time one pass looks at, at most: after a long stop, the backlog is swept a span at a time (each
# pass reads the events of its span to order them), the next pass at once.
SPAN_SECONDS = 60.0


class WebhookSweep(LoopService):
    """Every ``interval_seconds``: deliveries for events older than the grace that an enabled webhook lacks."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: SchedulerMetrics,
        on_new: Callable[[], None],
        *,
        interval_seconds: float,
        grace_seconds: float,
        lookback_seconds: float,
        batch_size: int,
    ) -> None:
        super().__init__("webhook-sweep", interval_seconds)
        self._pool = pool
        self._metrics = metrics
        self._on_new = on_new
        self._grace_seconds = grace_seconds
        self._lookback_seconds = lookback_seconds
        self._batch_size = batch_size

    async def run_once(self) -> None:
        """One pass; the next comes at once when this one stopped short of the grace's end."""
        _, more = await self.sweep()
        if more:
            self.wake()

    async def sweep(self) -> tuple[int, bool]:
        """Sweep one window and wake the delivery loop for what it recovered.

        Returns:
            How many deliveries were recovered, and whether more waits behind the window.
        """
        webhooks = await enabled_webhooks(self._pool)
        if not webhooks:
            return 0, False
        async with self._pool.acquire() as connection, connection.transaction():
            window = await claim_sweep_window(
                connection,
                grace_seconds=self._grace_seconds,
                lookback_seconds=self._lookback_seconds,
                span_seconds=SPAN_SECONDS,
            )
            if window is None or window.until <= window.after.occurred_at:  # another pass holds it, or nothing new
                return 0, False
            passed = await list_passed_events(
                connection,
                window,
                tenant_ids=list({webhook.tenant_id for webhook in webhooks}),
                event_types=list({event_type for webhook in webhooks for event_type in webhook.events}),
                limit=self._batch_size,
            )
            recovered = await self._record(connection, [event for event in passed if event.undelivered], webhooks)
            full = len(passed) == self._batch_size
            await advance_sweep(connection, _reached(window, passed[-1] if full else None))
        if recovered:
            self._metrics.webhook_deliveries_recovered.inc(recovered)
            self._on_new()
        return recovered, full or not window.until_is_grace

    @staticmethod
    async def _record(
        connection: asyncpg.Connection, passed: Sequence[PassedEvent], webhooks: Sequence[EnabledWebhook]
    ) -> int:
        """Insert the deliveries ``passed`` events call for; how many were new."""
        if not passed:
            return 0
        events = [_event(row) for row in passed]
        executions = await list_event_subjects(connection, list({event.execution_id for event in events}))
        return await insert_deliveries(connection, deliveries_for(events, webhooks, executions))


def _reached(window: SweepWindow, last: PassedEvent | None) -> SweepPosition:
    """Where a pass leaves the cursor: at the last event it read, or (it read them all) at the window's end."""
    if last is None:
        return SweepPosition(occurred_at=window.until, execution_id=BEFORE_ALL[0], sequence=BEFORE_ALL[1])
    return SweepPosition(occurred_at=last.occurred_at, execution_id=last.execution_id, sequence=last.sequence)


def _event(row: PassedEvent) -> ExecutionEvent:
    """The event as the topic carried it (what ``deliveries_for`` reads of it)."""
    return ExecutionEvent(
        tenant_id=row.tenant_id,
        execution_id=row.execution_id,
        timestamp_ms=int(row.occurred_at.timestamp() * 1000),
        sequence=row.sequence,
        event=row.event_type,
        step_id=row.step_id,
        task_id=row.task_id,
        data=row.data or {},
        occurred_at=row.occurred_at,
    )
