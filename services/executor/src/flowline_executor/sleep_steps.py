"""Sleep steps: a durable timer starts them, and its TimerFired completes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flowline.db.events import NewEvent
from flowline.db.steps import StepRow, start_step
from flowline.domain.definitions import StepDefinition, parse_duration
from flowline.domain.snapshots import TimerSnapshot
from flowline.domain.templating import TemplateError, render

from flowline_executor.change import Change
from flowline_executor.failures import failure
from flowline_executor.finishing import finish_without_running, settle_step
from flowline_executor.timers import start_timer


def sleep_until(step: StepDefinition, context: dict[str, Any]) -> datetime:
    """When a sleep step wakes: now plus its duration, or its rendered ``until`` timestamp.

    Raises:
        TemplateError: ``until`` does not render.
        ValueError: ``until`` is not an ISO 8601 timestamp.
    """
    if step.duration is not None:
        return datetime.now(UTC) + timedelta(seconds=parse_duration(step.duration))
    rendered = render(step.until, context)
    until = rendered if isinstance(rendered, datetime) else datetime.fromisoformat(str(rendered))
    return until if until.tzinfo else until.replace(tzinfo=UTC)


async def start_sleep(change: Change, step: StepDefinition, row: StepRow, context: dict[str, Any]) -> str:
    """Start a sleep step on a durable timer; the step's new status (failed when its ``until`` is no time)."""
    try:
        fire_at = sleep_until(step, context)
    except (TemplateError, ValueError) as err:
        await finish_without_running(change, row, "failed", failure(str(err)))
        return "failed"
    await change.flush()
    await start_step(change.connection, row.id, {"until": fire_at.isoformat()})
    change.outcomes.steps_started.append(step.type)
    timer_id = await start_timer(change, row.id, "sleep", fire_at)
    change.events.append(
        NewEvent(
            "TIMER_STARTED",
            TimerSnapshot(status="running", timer_id=str(timer_id), fire_at=fire_at.isoformat()),
            step.id,
            row.id,
        )
    )
    return "running"


async def wake(change: Change, step: StepRow, timer_id: uuid.UUID) -> None:
    """Complete a sleeping step whose timer fired."""
    change.events.append(NewEvent("TIMER_FIRED", TimerSnapshot(timer_id=str(timer_id)), step.step_id, step.id))
    await settle_step(change, step, output={"firedAt": datetime.now(UTC).isoformat()})
