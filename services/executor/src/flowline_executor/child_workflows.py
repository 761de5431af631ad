"""Workflow steps: each attempt starts a child execution, whose start and end the child reports back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from flowline.db.events import NewEvent
from flowline.db.execution_runs import RunningExecution, count_ancestors, read_child_outcome, read_parent_id
from flowline.db.steps import (
    StepRow,
    lock_step_of,
    read_step_running_child,
    reschedule_step,
    start_child_step,
)
from flowline.domain.definitions import StepDefinition
from flowline.domain.snapshots import ChildWorkflowSnapshot, TaskSnapshot
from flowline.domain.starting import ParentStep, parent_started_by, start_execution
from flowline.errors import ClientError
from flowline.messages import ChildExecutionFinished, ChildExecutionStarted
from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES

from flowline_executor.change import Change
from flowline_executor.failures import failure
from flowline_executor.finishing import finish_without_running, settle_step
from flowline_executor.timers import start_timer

# How deep child workflows may nest (a workflow that starts itself stops here instead of forever).
MAX_CHILD_DEPTH = 20


async def start_child(
    change: Change, execution: RunningExecution, step: StepDefinition, row: StepRow, step_input: Any
) -> str:
    """Start a workflow step's child execution (one per attempt of the step); the step's new status."""
    assert step.workflow is not None
    connection = change.connection
    await change.flush()
    attempt = row.attempts + 1
    if step_input is not None and not isinstance(step_input, dict):
        error = failure("a workflow step's input must be an object (the child's input)", retryable=False)
        await finish_without_running(change, row, "failed", error)
        return "failed"
    depth = await count_ancestors(connection, execution.id)
    if depth >= MAX_CHILD_DEPTH:
        error = failure(f"child workflows may nest {MAX_CHILD_DEPTH} deep; is {step.workflow!r} recursive?")
        await finish_without_running(change, row, "failed", {**error, "retryable": False})
        return "failed"
    try:
        child = await start_execution(
            connection,
            change.executor.topics,
            tenant_id=change.tenant_id,
            workflow_ref=step.workflow,
            version=step.version,
            execution_input=step_input or {},
            idempotency_key=f"child:{execution.id}:{step.id}:{row.generation}:{attempt}",
            triggered_by="workflow",
            started_by=parent_started_by(execution.id),
            owned_by=execution.owned_by,  # a child belongs to whoever owns its parent
            parent=ParentStep(execution.id, step.id, execution.root_execution_id),
        )
    except ClientError as err:
        await finish_without_running(change, row, "failed", failure(err.detail, retryable=False))
        return "failed"
    if not child.created and await read_parent_id(connection, child.id) != execution.id:
        error = failure(f"the idempotency key of this child is taken by execution {child.id}", retryable=False)
        await finish_without_running(change, row, "failed", error)
        return "failed"
    change.enqueued.extend(child.outbox)
    child_step_input = {"workflow": step.workflow, "childExecutionId": str(child.id), "input": step_input or {}}
    await start_child_step(connection, row.id, child_step_input, attempt)
    if attempt == 1:  # a later child is a retry of the step
        change.outcomes.steps_started.append(step.type)
    snapshot = ChildWorkflowSnapshot(
        status="running", workflow=step.workflow, child_execution_id=str(child.id), attempt=attempt
    )
    change.events.append(NewEvent("CHILD_WORKFLOW_INITIATED", snapshot, step.id, row.id))
    return "running"


async def child_started(change: Change, message: ChildExecutionStarted) -> None:
    """Note that a child of a running workflow step started (a late report of a step that moved on is dropped)."""
    step = await read_step_running_child(change.connection, change.execution_id, message.child_execution_id)
    if step is not None:
        data = ChildWorkflowSnapshot(child_execution_id=str(message.child_execution_id), status="running")
        change.events.append(NewEvent("CHILD_WORKFLOW_STARTED", data, step.step_id, step.id))


async def child_finished(change: Change, execution: RunningExecution, message: ChildExecutionFinished) -> bool:
    """Settle the workflow step of a finished child, or wait on a timer to retry it; whether the step finished."""
    connection = change.connection
    child = await read_child_outcome(connection, execution.id, message.child_execution_id)
    if child is None or child.status not in TERMINAL_EXECUTION_STATUSES:
        return False
    step = await lock_step_of(connection, execution.id, child.parent_step_id)
    if (
        step is None
        or step.status != "running"
        or (step.input or {}).get("childExecutionId") != str(message.child_execution_id)
    ):
        return False
    data = ChildWorkflowSnapshot(child_execution_id=str(message.child_execution_id), status=child.status)
    if child.status == "completed":
        change.events.append(NewEvent("CHILD_WORKFLOW_COMPLETED", data, step.step_id, step.id))
        await settle_step(change, step, output=child.output)
        return True
    change.events.append(NewEvent("CHILD_WORKFLOW_FAILED", data, step.step_id, step.id))
    reason = (child.error or {}).get("message", child.status)
    error = failure(
        f"child execution {message.child_execution_id} {child.status}: {reason}",
        type="ChildFailed",
        retryable=child.status == "failed",
    )
    graph = await change.executor.graph(connection, execution.workflow_version_id)
    policy = graph.steps[step.step_id].retry
    if not (error["retryable"] and policy and step.attempts < policy.max_attempts):
        await settle_step(change, step, error=error)
        return True
    # Like any failed attempt: wait on a durable timer, then start a new child.
    retry_at = datetime.now(UTC) + timedelta(seconds=policy.delay(step.attempts, random.random()))
    await reschedule_step(connection, step.id, error)
    await start_timer(change, step.id, "retry", retry_at)
    change.outcomes.retries.append("workflow")
    snapshot = TaskSnapshot(status="scheduled", attempt=step.attempts, error=error, retry_at=retry_at.isoformat())
    change.events.append(NewEvent("TASK_FAILED", snapshot, step.step_id, step.id))
    return False
