"""Invariant 3: a message delivered twice changes nothing."""

from __future__ import annotations

import asyncio

import msgspec
from flowline.domain.actions import load_actions
from flowline.messages import RequestMessage, TaskMessage, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.metrics import ExecutorMetrics

from tests.support import define_and_start, eventually

DEFINITION = {
    "steps": [
        {"id": "a", "type": "action", "action": "core.echo", "input": {"n": "{{ input.n }}"}},
        {"id": "b", "type": "action", "action": "core.echo", "needs": ["a"], "input": "{{ steps.a.output.n }}"},
    ],
    "output": "{{ steps.b.output }}",
}


async def test_redelivered_requests_and_tasks_apply_once(runtime: Runtime, settings: Settings) -> None:
    pool = runtime.pool
    started = await define_and_start(pool, settings, "demo.twice", DEFINITION, {"n": 7})
    # Deliver the request twice, as a relay that published before a crash and again after it would.
    await runtime.outbox.publish(started.outbox)
    await runtime.outbox.publish(started.outbox)

    # Every step through the tasks topic (no eager dispatch), so that every kind of message is redelivered.
    engine = Engine(
        msgspec.structs.replace(settings, eager_dispatch=False),
        pool,
        runtime.outbox,
        load_actions(),
        ExecutorMetrics(runtime.registry),
    )
    requests = runtime.consumer(
        "executor", [settings.topics.requests], decoder(RequestMessage), handler=engine.handle_request
    )

    async def handle_task_twice(message: TaskMessage) -> None:
        await engine.handle_task(message)
        await engine.handle_task(message)

    tasks = runtime.consumer("executor-tasks", [settings.topics.tasks], decoder(TaskMessage), handler=handle_task_twice)
    await requests.start()
    await tasks.start()
    try:

        async def completed() -> bool:
            await asyncio.gather(requests.poll_once(), tasks.poll_once())
            return await pool.fetchval("SELECT status FROM executions WHERE id = $1", started.id) == "completed"

        await eventually(completed, timeout=60)
        # Drain whatever duplicates are still in flight, then check nothing was applied twice.
        for _ in range(10):
            await asyncio.gather(requests.poll_once(50), tasks.poll_once(50))
    finally:
        await requests.stop()
        await tasks.stop()

    assert await pool.fetchval("SELECT output FROM executions WHERE id = $1", started.id) == 7
    events = [
        row["event_type"]
        for row in await pool.fetch(
            "SELECT event_type FROM execution_events WHERE execution_id = $1 ORDER BY sequence", started.id
        )
    ]
    assert events.count("WORKFLOW_STARTED") == 1
    assert events.count("TASK_STARTED") == 2
    assert events.count("TASK_COMPLETED") == 2
    assert events.count("WORKFLOW_COMPLETED") == 1
    assert await pool.fetchval("SELECT count(*) FROM step_executions WHERE execution_id = $1", started.id) == 2
    assert await pool.fetchval("SELECT count(*) FROM task_attempts WHERE execution_id = $1", started.id) == 2
    assert await pool.fetchval(
        "SELECT array_agg(attempts ORDER BY step_id) FROM step_executions WHERE execution_id = $1", started.id
    ) == [1, 1]
    # Metrics count what committed, so the duplicates count nothing either.
    counted = {
        ("flowline_executions_started_total", ()): 1,
        ("flowline_executions_finished_total", (("status", "completed"),)): 1,
        ("flowline_execution_duration_seconds_count", (("status", "completed"),)): 1,
        ("flowline_steps_started_total", (("step_type", "action"),)): 2,
        ("flowline_steps_finished_total", (("status", "completed"), ("step_type", "action"))): 2,
        ("flowline_step_duration_seconds_count", (("status", "completed"), ("step_type", "action"))): 2,
        ("flowline_step_attempts_total", (("outcome", "completed"), ("step_type", "action"))): 2,
    }
    for (name, labels), expected in counted.items():
        assert runtime.registry.get_sample_value(name, dict(labels)) == expected, name
    assert runtime.registry.get_sample_value("flowline_step_retries_total", {"step_type": "action"}) is None
