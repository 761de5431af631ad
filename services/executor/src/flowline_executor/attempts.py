"""Step attempts inside a change: dispatch, claim and start under a lease, run instant actions, settle results."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flowline.db.attempts import FinishedAttempt, create_running_attempt
from flowline.db.events import NewEvent
from flowline.db.steps import StepRow, lock_step, next_attempt_dispatch, schedule_step
from flowline.domain.actions import BUILTIN_ACTIONS
from flowline.domain.definitions import RetryPolicy, StepDefinition
from flowline.domain.snapshots import TaskSnapshot
from flowline.kafka.outbox import outgoing
from flowline.messages import TaskDispatched

from flowline_executor.attempt_work import AttemptLogger
from flowline_executor.change import Change, lock_execution
from flowline_executor.finishes import Finishes
from flowline_executor.timers import start_timer


async def dispatch(change: Change, step: StepDefinition, row: StepRow, step_input: Any) -> None:
    """Start the next attempt of a scheduled step (``row``), here or through the tasks topic.

    Here at once (eager) when this process has room, which saves a transaction and a broker round trip;
    otherwise any executor claims it from the tasks topic.
    """
    message = next_attempt_dispatch(change.tenant_id, change.execution_id, row)
    change.events.append(
        NewEvent("TASK_CREATED", TaskSnapshot(status="scheduled", attempt=message.attempt), step.id, row.id)
    )
    executor = change.executor
    if executor.settings.eager_dispatch and executor.slots.try_take():
        change.reserved += 1  # from here on, a failure releases the slot
        change.eager.append((message, step, step_input))
        await start_attempt(change, message, step.type, step_input)
    elif change.creating is not None:  # a new execution's step, inserted so
        change.creating[step.id].input = step_input
        change.outbox.append(outgoing(executor.topics.tasks, message))
    else:
        await change.flush()
        await schedule_step(change.connection, row.id, step_input)
        change.outbox.append(outgoing(executor.topics.tasks, message))


async def start_attempt(change: Change, message: TaskDispatched, step_type: str, step_input: Any) -> None:
    """Mark a step running under this worker's lease, with its attempt row (and pending attempt results)."""
    attempt_started(change, message, step_type)
    if change.creating is not None:  # a new execution's step, inserted so with its attempt
        row = change.creating[message.step_id]
        row.status = "running"
        row.attempts = message.attempt
        row.owner = change.worker
        row.input = step_input
        return
    settled = await create_running_attempt(
        change.connection,
        change.finishes.carry(),
        tenant_id=message.tenant_id,
        execution_id=message.execution_id,
        step_execution_id=message.step_execution_id,
        generation=message.generation,
        attempt=message.attempt,
        step_input=step_input,
        worker=change.worker,
        lease_seconds=change.executor.settings.lease_seconds,
    )
    Finishes.carried(settled, change.outcomes)


def attempt_started(change: Change, message: TaskDispatched, step_type: str) -> None:
    """The event, log record and count of an attempt this worker starts."""
    change.events.append(
        NewEvent(
            "TASK_STARTED",
            TaskSnapshot(status="running", attempt=message.attempt, worker=change.worker),
            message.step_id,
            message.step_execution_id,
        )
    )
    if message.attempt == 1:  # later attempts are retries (or recoveries) of a step already started
        change.outcomes.steps_started.append(step_type)
    change.log(
        "INFO",
        f"attempt {message.attempt} started on {change.worker}",
        task_id=message.step_execution_id,
        step_id=message.step_id,
        attempt=message.attempt,
    )


def runs_here(change: Change, step: StepDefinition) -> bool:
    """Whether a step is an instant action, run inside the change that makes it ready.

    The built-in actions compute their output from their input alone, at once: running them in that
    change writes their attempt, result and events with it, instead of a change to start the attempt
    and another to record its result (and, without room here, a trip through the tasks topic). An
    action from a pack may wait or have effects elsewhere, so it runs as an attempt under a lease.
    """
    if step.type != "action" or not change.executor.settings.eager_dispatch:
        return False
    action = change.executor.work.actions.get(step.action or "")
    return action is not None and action is BUILTIN_ACTIONS.get(step.action or "")


async def run_here(change: Change, step: StepDefinition, row: StepRow, step_input: Any) -> None:
    """Run an instant action's attempt inside this change (see ``runs_here``) and settle it in ``row``."""
    message = next_attempt_dispatch(change.tenant_id, change.execution_id, row)
    change.events.append(
        NewEvent("TASK_CREATED", TaskSnapshot(status="scheduled", attempt=message.attempt), step.id, row.id)
    )
    attempt_started(change, message, step.type)
    attempt_logger = AttemptLogger()
    started = time.perf_counter()
    output, error = await change.executor.work.run(message, step, step_input, attempt_logger)
    duration = time.perf_counter() - started
    change.outcomes.attempts.append((step.type, error is not None, duration))
    row.attempts = message.attempt
    await settle_attempt(
        change, message, step.type, step.retry, output, error, attempt_logger, duration, row, step_input=step_input
    )


async def claim(change: Change, message: TaskDispatched) -> bool:
    """Start a dispatched attempt under this worker's lease, unless it was redelivered or superseded.

    Returns:
        Whether the change claimed it (its ``eager`` list then holds it, to run once the change commits).
    """
    execution = await lock_execution(change, message.execution_id)
    if execution.status != "running":
        return False
    step = await lock_step(change.connection, execution.id, message.step_execution_id)
    if (
        step is None
        or step.step_id != message.step_id
        or step.status != "scheduled"
        or step.generation != message.generation
        or step.attempts >= message.attempt
    ):
        return False  # a redelivered or superseded dispatch
    graph = await change.executor.graph(change.connection, execution.workflow_version_id)
    definition = graph.steps[message.step_id]
    change.eager.append((message, definition, step.input))  # takes the reservation if it commits
    await start_attempt(change, message, definition.type, step.input)
    return True


async def settle_attempt(
    change: Change,
    message: TaskDispatched,
    step_type: str,
    policy: RetryPolicy | None,
    output: Any,
    error: dict[str, Any] | None,
    attempt_logger: AttemptLogger,
    duration: float,
    row: StepRow,
    *,
    step_input: Any = None,
) -> None:
    """Record a finished attempt: its step completes, fails, or waits on a durable timer for the next one.

    The result is written by the change's next statement (see ``Finishes``); ``row`` (the step's row as
    this change sees it) takes the step's new status and result. ``step_input`` is the input of an
    attempt that ran inside this change, not yet stored.
    """
    status = "failed" if error else "completed"
    retry_in = _retry_in(policy, message.attempt, error)
    _log_result(change, message, attempt_logger, duration, error, retry_in)
    step_status = status if retry_in is None else "scheduled"  # a retry waits for its next attempt
    change.finishes.add(
        FinishedAttempt(
            message.step_execution_id,
            message.generation,
            message.attempt,
            status,
            step_status,
            round(duration * 1000),
            error,
            None if retry_in is not None else output,
            step_input,
        )
    )
    row.status = step_status
    row.output = None if retry_in is not None else output
    row.error = error
    row.owner = None
    if retry_in is None:
        change.events.append(
            NewEvent(
                "TASK_FAILED" if error else "TASK_COMPLETED",
                TaskSnapshot(status=status, attempt=message.attempt, output=output, error=error),
                message.step_id,
                message.step_execution_id,
            )
        )
        return
    # The step waits for its next attempt on a durable timer, not in this process.
    retry_at = datetime.now(UTC) + timedelta(seconds=retry_in)
    await start_timer(change, message.step_execution_id, "retry", retry_at)
    change.outcomes.retries.append(step_type)
    change.events.append(
        NewEvent(
            "TASK_FAILED",
            TaskSnapshot(status="scheduled", attempt=message.attempt, error=error, retry_at=retry_at.isoformat()),
            message.step_id,
            message.step_execution_id,
        )
    )


def _retry_in(policy: RetryPolicy | None, attempt: int, error: dict[str, Any] | None) -> float | None:
    """Seconds until the next attempt of a step whose attempt failed, or None when it gets no other."""
    if not (error and error.get("retryable") and policy and attempt < policy.max_attempts):
        return None
    return max(policy.delay(attempt, random.random()), min(error.get("retryAfter") or 0.0, policy.max_interval))


def _log_result(
    change: Change,
    message: TaskDispatched,
    attempt_logger: AttemptLogger,
    duration: float,
    error: dict[str, Any] | None,
    retry_in: float | None,
) -> None:
    """The attempt's own log records, then one that sums it up."""
    for level, text, metadata in attempt_logger.records:
        change.log(
            level,
            text,
            task_id=message.step_execution_id,
            step_id=message.step_id,
            attempt=message.attempt,
            metadata=metadata,
        )
    summary = f"attempt {message.attempt} {'failed' if error else 'completed'} in {duration * 1000:.1f} ms"
    if error:
        summary += f": {error['message']}"
    if retry_in is not None:
        summary += f"; attempt {message.attempt + 1} in {retry_in:.1f} s"
    change.log(
        "ERROR" if error else "INFO",
        summary,
        task_id=message.step_execution_id,
        step_id=message.step_id,
        attempt=message.attempt,
    )
