"""Recording a claimed attempt's result: settle its step and advance the graph, if the attempt is still its own."""

from __future__ import annotations

from flowline.db.steps import read_steps

from flowline_executor.advancing import advance
from flowline_executor.attempt_work import Claimed, Outcome
from flowline_executor.attempts import settle_attempt
from flowline_executor.change import Change, lock_execution


async def record_result(change: Change, claimed: Claimed, outcome: Outcome, duration: float) -> None:
    """Settle the attempt's step unless it was cancelled or taken over (a lost lease) meanwhile."""
    message = claimed.message
    execution = await lock_execution(change, message.execution_id)
    # The execution's lock guards its steps: every writer of a step row takes it first.
    steps = await read_steps(change.connection, execution.id)
    step = steps.get(message.step_id)
    if step is None or step.status != "running" or step.attempts != message.attempt or step.owner != change.worker:
        return  # cancelled, or the lease expired and another worker took over
    await settle_attempt(
        change,
        message,
        claimed.step.type,
        outcome.policy,
        outcome.output,
        outcome.error,
        outcome.logger,
        duration,
        step,
    )
    if step.status != "scheduled":
        graph = await change.executor.graph(change.connection, execution.workflow_version_id)
        await advance(change, execution, graph, steps)
