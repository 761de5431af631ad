"""Durable timers a change starts: a row the scheduler fires as TimerFired, announced by TimerScheduled."""

from __future__ import annotations

import uuid
from datetime import datetime

from flowline.db.timers import create_timer
from flowline.kafka.outbox import outgoing
from flowline.messages import TimerScheduled
from flowline.runtime.ids import uuid7

from flowline_executor.change import Change


async def start_timer(change: Change, step_execution_id: uuid.UUID | None, kind: str, fire_at: datetime) -> uuid.UUID:
    """Store a durable timer and tell the scheduler about it; it fires TimerFired on the control topic."""
    await change.flush()
    timer_id = uuid7()
    await create_timer(
        change.connection,
        timer_id=timer_id,
        tenant_id=change.tenant_id,
        execution_id=change.execution_id,
        step_execution_id=step_execution_id,
        kind=kind,
        fire_at=fire_at,
    )
    change.outbox.append(
        outgoing(
            change.executor.topics.timers,
            TimerScheduled(
                tenant_id=change.tenant_id, execution_id=change.execution_id, timer_id=timer_id, fire_at=fire_at
            ),
        )
    )
    return timer_id
