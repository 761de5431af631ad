"""Wait steps: a promise that the api settles (PromiseSettled) or that times out on a durable timer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowline.db.events import NewEvent
from flowline.db.promises import create_promise, read_promise, time_out_promise
from flowline.db.steps import StepRow, lock_step, start_step
from flowline.domain.definitions import StepDefinition
from flowline.domain.snapshots import PromiseSnapshot
from flowline.messages import PromiseSettled

from flowline_executor.change import Change
from flowline_executor.failures import failure
from flowline_executor.finishing import finish_without_running, settle_step
from flowline_executor.timers import start_timer


async def start_wait(change: Change, step: StepDefinition, row: StepRow) -> str:
    """Start a wait step: a pending promise (and a timer when the wait is bounded); the step's new status."""
    await change.flush()
    name = step.promise or step.id
    expires_at = datetime.now(UTC) + timedelta(seconds=step.timeout) if step.timeout else None
    promise_id = await create_promise(
        change.connection,
        tenant_id=change.tenant_id,
        execution_id=change.execution_id,
        step_execution_id=row.id,
        name=name,
        expires_at=expires_at,
    )
    if promise_id is None:
        error = failure(f"promise {name!r} is already used by another step of this execution", retryable=False)
        await finish_without_running(change, row, "failed", error)
        return "failed"
    await start_step(change.connection, row.id, {"promise": name})
    if expires_at is not None:
        await start_timer(change, row.id, "promise", expires_at)
    change.outcomes.steps_started.append(step.type)
    change.events.append(
        NewEvent(
            "PROMISE_CREATED",
            PromiseSnapshot(
                status="running",
                promise=name,
                promise_id=str(promise_id),
                expires_at=expires_at.isoformat() if expires_at else None,
            ),
            step.id,
            row.id,
        )
    )
    return "running"


async def settle_wait(change: Change, message: PromiseSettled) -> bool:
    """Finish the wait step of a resolved or rejected promise; whether its step finished."""
    step = await lock_step(change.connection, change.execution_id, message.step_execution_id)
    promise = await read_promise(change.connection, change.execution_id, message.promise_id)
    if step is None or promise is None or step.status != "running":
        return False
    if promise.status == "resolved":
        snapshot = PromiseSnapshot(promise=promise.name, value=promise.value)
        change.events.append(NewEvent("PROMISE_RESOLVED", snapshot, step.step_id, step.id))
        await settle_step(change, step, output=promise.value)
        return True
    if promise.status == "rejected":
        snapshot = PromiseSnapshot(promise=promise.name, error=promise.error)
        change.events.append(NewEvent("PROMISE_REJECTED", snapshot, step.step_id, step.id))
        reason = (promise.error or {}).get("message", "rejected")
        error = failure(f"promise {promise.name!r} was rejected: {reason}", type="PromiseRejected", retryable=False)
        await settle_step(change, step, error=error)
        return True
    return False


async def time_out(change: Change, step: StepRow) -> bool:
    """Fail a wait step whose promise's timer fired before it was settled; whether it did."""
    promise = await time_out_promise(change.connection, change.execution_id, step.id)
    if promise is None:
        return False
    error = failure(f"promise {promise!r} was not settled in time", type="Timeout", retryable=False)
    await settle_step(change, step, error=error)
    return True
