"""Advancing an execution's graph: start every step whose needs are met, and end the execution when it is done."""

from __future__ import annotations

from typing import Any

import msgspec
from flowline.db.execution_runs import RunningExecution
from flowline.db.steps import StepRow, read_steps
from flowline.domain.definitions import StepDefinition, masked_request
from flowline.domain.templating import TemplateError, render, render_condition

from flowline_executor.attempts import dispatch, run_here, runs_here
from flowline_executor.change import Change
from flowline_executor.child_workflows import start_child
from flowline_executor.failures import failure
from flowline_executor.finishing import finish_execution, finish_without_running
from flowline_executor.graph import Graph
from flowline_executor.sleep_steps import start_sleep
from flowline_executor.wait_steps import start_wait


async def advance(
    change: Change, execution: RunningExecution, graph: Graph, steps: dict[str, StepRow] | None = None
) -> None:
    """Schedule every step whose needs are met, skip those whose ``when`` is false, finish the execution.

    ``steps`` are the execution's step rows as this transaction left them, when the caller has them.
    Nothing starts (and nothing finishes) while the execution is paused: resuming advances it.
    """
    if execution.status != "running":
        return
    if steps is None:
        steps = await read_steps(change.connection, execution.id)
    statuses = {step_id: step.status for step_id, step in steps.items()}
    progressed = True
    while progressed and not graph.failed_step(statuses):
        progressed = False
        context = template_context(execution, steps)
        for step in graph.ready(statuses):
            row = steps[step.id]
            statuses[step.id] = await _start_step(change, execution, step, row, context)
            # A step that finished here may let others start; one that failed may end the execution.
            progressed = progressed or statuses[step.id] in ("completed", "failed", "skipped")
    await _finish_if_done(change, execution, graph, steps, statuses)


async def _start_step(
    change: Change, execution: RunningExecution, step: StepDefinition, row: StepRow, context: dict[str, Any]
) -> str:
    """Start a ready step as its kind says, or skip or fail it; its new status, also written to ``row``."""
    try:
        if step.when is not None and not render_condition(step.when, context):
            await finish_without_running(change, row, "skipped", None)
            row.status = "skipped"
            return "skipped"
        # An http step's secret headers stay masked in its input: opened only when it is sent.
        step_input = render(
            masked_request(step.request) if step.type == "http" and step.request else step.input, context
        )
        _check_storable(step_input)
    except TemplateError as err:
        await finish_without_running(change, row, "failed", failure(str(err)))
        row.status = "failed"
        return "failed"
    if step.type == "sleep":
        row.status = await start_sleep(change, step, row, context)
    elif step.type == "wait":
        row.status = await start_wait(change, step, row)
    elif step.type == "workflow":
        row.status = await start_child(change, execution, step, row, step_input)
    elif runs_here(change, step):
        await run_here(change, step, row, step_input)  # settles ``row``: completed, failed or scheduled again
    else:
        row.status = "scheduled"
        await dispatch(change, step, row, step_input)
    status: str = row.status
    return status


async def _finish_if_done(
    change: Change,
    execution: RunningExecution,
    graph: Graph,
    steps: dict[str, StepRow],
    statuses: dict[str, str],
) -> None:
    """End the execution when a step's failure fails it or every step finished (its output rendered)."""
    if failed := graph.failed_step(statuses):
        message = (steps[failed].error or {}).get("message", "failed")
        error = failure(f"step {failed!r} failed: {message}", stepId=failed)
        await finish_execution(change, execution, "failed", error=error)
    elif graph.finished(statuses):
        try:
            if graph.definition.output is None:
                output = {step_id: steps[step_id].output for step_id in graph.leaves()}
            else:
                output = render(graph.definition.output, template_context(execution, steps))
        except TemplateError as err:
            await finish_execution(change, execution, "failed", error=failure(f"workflow output: {err}"))
        else:
            await finish_execution(change, execution, "completed", output=output)


def template_context(execution: RunningExecution, steps: dict[str, StepRow]) -> dict[str, Any]:
    """What a step's templates see: the execution's input, its steps' outputs and statuses, and the execution."""
    return {
        "input": execution.input,
        "steps": {step_id: {"output": step.output, "status": step.status} for step_id, step in steps.items()},
        "execution": {
            "id": str(execution.id),
            "workflowRef": execution.workflow_ref,
            "workflowVersion": execution.workflow_version,
            "scheduledFor": None if execution.scheduled_for is None else execution.scheduled_for.isoformat(),
        },
    }


def _check_storable(value: Any) -> None:
    """Refuse a rendered value that cannot be stored as JSON, blaming the step whose input it is.

    Raises:
        TemplateError: the value is not JSON (e.g. ``range(3)``) or holds a NUL character.
    """
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, ValueError) as err:
        raise TemplateError(f"the rendered input is not JSON: {err}") from err
    if b"\\u0000" in encoded:
        raise TemplateError("the rendered input holds a NUL character (\\u0000), which cannot be stored")
