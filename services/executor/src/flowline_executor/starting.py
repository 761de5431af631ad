"""Starting an execution that ExecutionRequested asks for: its step rows, first events, timeout and first steps.

There is one way to start, worked out either under the execution's lock or, the fast path, ahead of it from
the execution the request carries (``ahead``): then nothing is read, and ``Change.write_new`` writes the whole
start in one statement. A start ahead that needs the database raises ``NeedsLock`` and is worked out locked.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from flowline.db.events import NewEvent
from flowline.db.execution_runs import (
    RunningExecution,
    insert_steps_and_run,
    lock_and_insert_steps,
    restart_execution,
)
from flowline.db.steps import StepRow, list_reusable_steps, new_steps
from flowline.domain.definitions import downstream
from flowline.domain.snapshots import TaskSnapshot, WorkflowSnapshot
from flowline.domain.starting import CREATED_SEQUENCE
from flowline.kafka.outbox import outgoing
from flowline.messages import ChildExecutionStarted, EventType, ExecutionRequested

from flowline_executor.advancing import advance
from flowline_executor.change import AHEAD_OF_LOCK, Change, NeedsLock, lock_execution, refused
from flowline_executor.graph import Graph
from flowline_executor.timers import start_timer


async def start(change: Change, message: ExecutionRequested, *, ahead: bool = False) -> None:
    """Start the requested execution, resume a retried one, or do nothing (redelivered, cancelled).

    ``ahead`` works it out before the execution is locked, as the request says it was created, for
    ``Change.write_new`` to write.

    Raises:
        NeedsLock: ahead, and the start needs the database.
    """
    if ahead:
        await _start_as_created(change, message)
        return
    steps: dict[str, StepRow] | None = None
    started = False
    if message.workflow_version_id is not None:  # the usual request: lock and start in one statement
        graph = await change.executor.graph(change.connection, message.workflow_version_id)
        steps = new_steps(graph.definition.steps)
        execution, started = await _lock_and_start(change, message, message.workflow_version_id, steps)
    else:
        execution = await lock_execution(change, message.execution_id)
    if execution.status != "pending":
        return  # a redelivered request (the status says it was applied) or a cancelled execution
    graph = await change.executor.graph(change.connection, execution.workflow_version_id)
    if execution.started_at is not None:  # a retry: resume from the steps that did not finish well
        await _restart(change, execution, graph)
        return
    if steps is None or not started:  # an older request, or a rerun: steps stored here
        steps = new_steps(graph.definition.steps)
        await _create_steps(change, execution, graph, steps)
    await _begin(change, execution, graph, steps)


async def _start_as_created(change: Change, message: ExecutionRequested) -> None:
    """Start the execution as the request says it was created, without reading or writing anything."""
    created, version_id = message.created, message.workflow_version_id
    if created is None or version_id is None:
        raise NeedsLock("the request does not carry the new execution")
    graph = await change.executor.graph(AHEAD_OF_LOCK, version_id)
    execution = RunningExecution(
        id=message.execution_id,
        tenant_id=message.tenant_id,
        status="pending",
        input=created.input,
        workflow_ref=created.workflow_ref,
        workflow_version=created.workflow_version,
        workflow_version_id=version_id,
        parent_execution_id=created.parent_execution_id,
        parent_step_id=created.parent_step_id,
        root_execution_id=created.root_execution_id,
        last_event_sequence=CREATED_SEQUENCE,
        started_at=None,
        rerun_of=None,
        rerun_from_step=None,
        owned_by=created.owned_by,
        scheduled_for=created.scheduled_for,
    )
    change.creating = steps = new_steps(graph.definition.steps)
    change.last_sequence = CREATED_SEQUENCE
    change.started_at = datetime.now(UTC)
    await _begin(change, execution, graph, steps)


async def _lock_and_start(
    change: Change, message: ExecutionRequested, version_id: uuid.UUID, steps: dict[str, StepRow]
) -> tuple[RunningExecution, bool]:
    """Lock the execution and, when it is new and of the requested version, store ``steps`` and start it.

    The execution comes back as it was when locked, with whether this statement started it (a retry, a
    rerun or an execution that is no longer pending is left as it was, for the caller to handle). A started
    execution's status and ``started_at`` (the lock's time) are written by the change's last statement
    (``change.started_at``), with its event counter: one update of the row instead of two.
    """
    locked = await lock_and_insert_steps(
        change.connection,
        execution_id=message.execution_id,
        tenant_id=message.tenant_id,
        workflow_version_id=version_id,
        worker=change.worker,
        lease_seconds=change.executor.settings.lease_seconds,
        steps=steps,
    )
    if locked is None:
        raise refused(change.tenant_id, message.execution_id)
    change.last_sequence = locked.execution.last_event_sequence
    if locked.started:
        change.started_at = locked.starting_at
    return locked.execution, locked.started


async def _create_steps(change: Change, execution: RunningExecution, graph: Graph, steps: dict[str, StepRow]) -> None:
    """Store the step rows of an execution that starts (reusing a rerun's outputs) and mark it running."""
    if execution.rerun_of is not None:
        await _reuse_outputs(change, execution.rerun_of, execution.rerun_from_step, graph, steps)
    lease_seconds = change.executor.settings.lease_seconds
    await insert_steps_and_run(
        change.connection, execution, worker=change.worker, lease_seconds=lease_seconds, steps=steps
    )


async def _reuse_outputs(
    change: Change, rerun_of: uuid.UUID, from_step: str | None, graph: Graph, steps: dict[str, StepRow]
) -> None:
    """Take over, for a rerun, the finished steps of the rerun execution that it does not run again.

    The step the rerun runs from and everything downstream of it run again, and so do steps that did
    not finish well.
    """
    again = downstream(graph.definition, from_step) if from_step is not None else set()
    for source in await list_reusable_steps(change.connection, rerun_of):
        row = steps.get(source.step_id)
        if row is not None and source.step_id not in again:
            row.status = source.status
            row.output = source.output


async def _begin(change: Change, execution: RunningExecution, graph: Graph, steps: dict[str, StepRow]) -> None:
    """Start a pending execution whose step rows are ``steps``: its events, timeout, and first steps."""
    change.events.append(NewEvent("WORKFLOW_STARTED", WorkflowSnapshot(status="running")))
    if execution.parent_execution_id is not None:
        started = ChildExecutionStarted(
            tenant_id=execution.tenant_id,
            execution_id=execution.parent_execution_id,
            child_execution_id=execution.id,
        )
        change.outbox.append(outgoing(change.executor.topics.control, started))
    change.outcomes.executions_started += 1
    for row in steps.values():
        if row.status != "pending":
            event: EventType = "TASK_COMPLETED" if row.status == "completed" else "TASK_SKIPPED"
            snapshot = TaskSnapshot(status=row.status, output=row.output, reused_from=str(execution.rerun_of))
            change.events.append(NewEvent(event, snapshot, row.step_id, row.id))
    await _start_execution_timer(change, graph)
    await advance(change, msgspec.structs.replace(execution, status="running"), graph, steps)


async def _restart(change: Change, execution: RunningExecution, graph: Graph) -> None:
    """Run a retried execution again from its failed and cancelled steps; completed steps keep their output.

    Each reset step starts a new generation, so its attempts (and a workflow step's child) get new
    idempotency keys.
    """
    await restart_execution(change.connection, execution.id)
    change.events.append(NewEvent("WORKFLOW_STARTED", WorkflowSnapshot(status="running")))
    change.outcomes.executions_started += 1
    await _start_execution_timer(change, graph)
    await advance(change, msgspec.structs.replace(execution, status="running"), graph)


async def _start_execution_timer(change: Change, graph: Graph) -> None:
    """The timer that fails the execution when it runs longer than its workflow's ``timeout``."""
    if graph.definition.timeout:
        deadline = datetime.now(UTC) + timedelta(seconds=graph.definition.timeout)
        await start_timer(change, None, "execution_timeout", deadline)
