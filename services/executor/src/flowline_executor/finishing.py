"""Finishing: steps that end without an attempt (skipped, failed, settled) and the execution's own end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowline.db.attempts import cancel_running_attempts
from flowline.db.events import ExecutionEnd, NewEvent
from flowline.db.execution_runs import RunningExecution, end_execution, list_active_children
from flowline.db.promises import reject_pending_promises
from flowline.db.steps import StepRow, cancel_unfinished_steps, finish_step
from flowline.db.timers import cancel_step_timers
from flowline.domain.snapshots import PromiseSnapshot, TaskSnapshot, TimerSnapshot, WorkflowSnapshot
from flowline.kafka.outbox import outgoing
from flowline.messages import CancelExecution, ChildExecutionFinished, EventType

from flowline_executor.change import Change
from flowline_executor.failures import failure
from flowline_executor.finishes import Finishes

FINISHED_EVENTS: dict[str, EventType] = {
    "completed": "WORKFLOW_COMPLETED",
    "failed": "WORKFLOW_FAILED",
    "cancelled": "WORKFLOW_CANCELLED",
}


async def finish_without_running(change: Change, row: StepRow, status: str, error: dict[str, Any] | None) -> None:
    """End a step that never ran (skipped, or failed before it could start) and note it in ``row``."""
    if change.creating is not None:  # a new execution's step, inserted so
        change.outcomes.steps_finished.append((row.step_type, status, None))
    else:
        await change.flush()
        finished = await finish_step(change.connection, row.id, status, error=error)
        change.outcomes.steps_finished.append((finished.step_type, status, finished.seconds))
    row.error = error
    event: EventType = "TASK_SKIPPED" if status == "skipped" else "TASK_FAILED"
    change.events.append(NewEvent(event, TaskSnapshot(status=status, error=error), row.step_id, row.id))


async def settle_step(
    change: Change, step: StepRow, *, output: Any = None, error: dict[str, Any] | None = None
) -> None:
    """Finish a step that ran without an attempt (sleep, wait, child workflow) and cancel its pending timers."""
    status = "failed" if error else "completed"
    finished = await finish_step(change.connection, step.id, status, output=output, error=error)
    change.outcomes.steps_finished.append((finished.step_type, status, finished.seconds))
    await cancel_step_timers(change.connection, step.id)
    change.events.append(
        NewEvent(
            "TASK_FAILED" if error else "TASK_COMPLETED",
            TaskSnapshot(status=status, output=output, error=error),
            step.step_id,
            step.id,
        )
    )


async def finish_execution(
    change: Change,
    execution: RunningExecution,
    status: str,
    *,
    output: Any = None,
    error: dict[str, Any] | None = None,
) -> None:
    """End the execution: completed by the change's last statement, or failed/cancelled with what still runs."""
    if status == "completed":
        # Every step finished, so nothing waits on a timer but perhaps the execution's own timeout, whose end
        # needs no event: the statement that appends the final events writes the end (see Change.write).
        change.end = ExecutionEnd(status, output, error)
    else:
        await _stop_everything(change, execution, status, output, error)
    change.events.append(NewEvent(FINISHED_EVENTS[status], WorkflowSnapshot(status=status, output=output, error=error)))
    if execution.parent_execution_id is not None:
        change.outbox.append(
            outgoing(
                change.executor.topics.control,
                ChildExecutionFinished(
                    tenant_id=execution.tenant_id,
                    execution_id=execution.parent_execution_id,
                    child_execution_id=execution.id,
                ),
            )
        )
    started_at = execution.started_at  # None when the execution finishes in the transaction that starts it
    seconds = (datetime.now(UTC) - started_at).total_seconds() if started_at is not None else 0.0
    change.outcomes.executions_finished.append((status, seconds))


async def _stop_everything(
    change: Change, execution: RunningExecution, status: str, output: Any, error: dict[str, Any] | None
) -> None:
    """A failed or cancelled execution: its timers, children, promises, steps and attempts stop with it."""
    connection = change.connection
    ended = await end_execution(
        connection, change.finishes.carry(), execution_id=execution.id, status=status, output=output, error=error
    )
    Finishes.carried(ended.settled, change.outcomes)
    for timer in ended.cancelled_timers:
        if timer.kind == "sleep":  # other timers are internal: TASK_CANCELLED or the final event says it
            change.events.append(
                NewEvent("TIMER_CANCELLED", TimerSnapshot(timer_id=str(timer.id)), timer.step_id, timer.task_id)
            )
    children = await list_active_children(connection, execution.id)
    change.outbox.extend(
        outgoing(
            change.executor.topics.control,
            CancelExecution(
                tenant_id=execution.tenant_id,
                execution_id=child.id,
                reason=f"the parent execution {status}",
                requested_by="parent",
            ),
        )
        for child in children
    )
    rejected = await reject_pending_promises(connection, execution.id, failure(f"the execution {status}"))
    for promise in rejected:
        change.events.append(
            NewEvent("PROMISE_REJECTED", PromiseSnapshot(promise=promise.name), promise.step_id, promise.task_id)
        )
    cancelled = await cancel_unfinished_steps(connection, execution.id)
    change.outcomes.steps_finished.extend((step.step_type, "cancelled", step.seconds) for step in cancelled)
    await cancel_running_attempts(connection, execution.id, [step.id for step in cancelled])
    change.cancelled_steps.extend(step.id for step in cancelled)
    for step in cancelled:
        change.events.append(NewEvent("TASK_CANCELLED", TaskSnapshot(status="cancelled"), step.step_id, step.id))
