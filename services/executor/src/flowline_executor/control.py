"""The control topic's messages applied to their execution: timers fired, promises settled, children, cancels."""

from __future__ import annotations

from flowline.db.execution_runs import RunningExecution, mark_cancelled
from flowline.db.steps import list_stranded_steps, lock_step
from flowline.kafka.inbox import claim_message
from flowline.messages import (
    AdvanceExecution,
    CancelExecution,
    ChildExecutionFinished,
    ChildExecutionStarted,
    ControlMessage,
    PromiseSettled,
    TimerFired,
)
from flowline_schemas.executions import TERMINAL_EXECUTION_STATUSES

from flowline_executor.advancing import advance
from flowline_executor.attempts import dispatch
from flowline_executor.change import Change, lock_execution
from flowline_executor.child_workflows import child_finished, child_started, start_child
from flowline_executor.failures import failure
from flowline_executor.finishing import finish_execution
from flowline_executor.graph import Graph
from flowline_executor.sleep_steps import wake
from flowline_executor.wait_steps import settle_wait, time_out

# The name under which the ids of applied control messages are kept (the inbox).
CONTROL_CONSUMER = "executor-control"


async def apply_control(change: Change, message: ControlMessage) -> None:
    """Apply a control message once to its execution, unless the execution has ended."""
    if not await claim_message(change.connection, CONTROL_CONSUMER, message.id):
        return
    execution = await lock_execution(change, message.execution_id)
    if execution.status in TERMINAL_EXECUTION_STATUSES:
        return
    match message:
        case TimerFired():
            await _timer_fired(change, execution, message)
        case PromiseSettled():
            if await settle_wait(change, message):
                await _advance(change, execution)
        case ChildExecutionStarted():
            await child_started(change, message)
        case ChildExecutionFinished():
            if await child_finished(change, execution, message):
                await _advance(change, execution)
        case AdvanceExecution() if execution.status == "running":
            graph = await change.executor.graph(change.connection, execution.workflow_version_id)
            await _redispatch_stranded(change, execution, graph)
            await advance(change, execution, graph)
        case CancelExecution():
            await mark_cancelled(change.connection, execution.id, message.requested_by)
            error = failure(message.reason or "cancelled", type="Cancelled")
            await finish_execution(change, execution, "cancelled", error=error)


async def _advance(change: Change, execution: RunningExecution) -> None:
    graph = await change.executor.graph(change.connection, execution.workflow_version_id)
    await advance(change, execution, graph)


async def _timer_fired(change: Change, execution: RunningExecution, message: TimerFired) -> None:
    """The execution timed out, a retry is due, a sleep is over or a wait ran out of time."""
    if message.kind == "execution_timeout":
        graph = await change.executor.graph(change.connection, execution.workflow_version_id)
        error = failure(f"the execution did not finish within {graph.definition.timeout} s", type="Timeout")
        await finish_execution(change, execution, "failed", error=error)
        return
    if message.step_execution_id is None:
        return
    step = await lock_step(change.connection, change.execution_id, message.step_execution_id)
    if step is None:
        return
    if message.kind == "retry" and step.status == "scheduled" and execution.status == "running":
        graph = await change.executor.graph(change.connection, execution.workflow_version_id)
        definition = graph.steps[step.step_id]
        if definition.type != "workflow":
            await dispatch(change, definition, step, step.input)
        elif await start_child(change, execution, definition, step, (step.input or {}).get("input")) == "failed":
            await advance(change, execution, graph)
    elif message.kind == "sleep" and step.status == "running":
        await wake(change, step, message.timer_id)
        await _advance(change, execution)
    elif message.kind == "promise" and step.status == "running" and await time_out(change, step):
        await _advance(change, execution)


async def _redispatch_stranded(change: Change, execution: RunningExecution, graph: Graph) -> None:
    """Start again the scheduled steps that nothing else will start.

    That is a claim that found the execution paused, a retry timer that fired while it was paused, or a
    lost task message. A duplicate dispatch is harmless: a claim takes an attempt only once.
    """
    stranded = await list_stranded_steps(change.connection, change.execution_id)
    for step in stranded:
        definition = graph.steps[step.step_id]
        if definition.type == "workflow":
            child_input = (step.input or {}).get("input")
            await start_child(change, execution, definition, step, child_input)
        else:
            await dispatch(change, definition, step, step.input)
