"""A new execution's start, worked out from its request before the execution is locked, in one statement."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from flowline.domain.actions import ActionContext, load_actions
from flowline.messages import CancelExecution, ExecutionRequested, RequestMessage, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.metrics import ExecutorMetrics
from prometheus_client import CollectorRegistry

from tests.support import define_and_start, eventually

REQUESTS = decoder(RequestMessage)

DEFINITION = {
    "steps": [
        {"id": "first", "type": "action", "action": "core.echo", "input": {"n": "{{ input.n }}"}},
        {"id": "never", "type": "action", "action": "core.noop", "when": "{{ input.n > 100 }}"},
        {
            "id": "slow",
            "type": "action",
            "action": "demo.slow",
            "needs": ["first"],
            "input": "{{ steps.first.output.n }}",
        },
        {"id": "last", "type": "action", "action": "core.echo", "needs": ["slow"], "input": "{{ steps.slow.output }}"},
    ],
    "output": "{{ steps.last.output }}",
}


async def _requested(runtime: Runtime, settings: Settings, ref: str, definition: dict[str, Any]) -> ExecutionRequested:
    started = await define_and_start(runtime.pool, settings, ref, definition, {"n": 3})
    (row,) = [row for row in started.outbox if row.topic == settings.topics.requests]
    request = REQUESTS.decode(row.payload)
    assert isinstance(request, ExecutionRequested) and request.created is not None
    return request


async def _written(runtime: Runtime, execution_id: uuid.UUID) -> dict[str, Any]:
    """The rows of an execution's start, without ids and times (which differ between any two executions)."""
    pool = runtime.pool
    steps = await pool.fetch(
        "SELECT step_id, step_type, status, attempts, owner, input, output, error, lease_expires_at IS NOT NULL, "
        "scheduled_at IS NOT NULL, started_at IS NOT NULL, completed_at IS NOT NULL "
        "FROM step_executions WHERE execution_id = $1 ORDER BY position",
        execution_id,
    )
    attempts = await pool.fetch(
        "SELECT s.step_id, a.generation, a.number, a.status, a.worker, a.error, a.finished_at IS NOT NULL, "
        "a.duration_ms IS NOT NULL FROM task_attempts a JOIN step_executions s ON s.id = a.step_execution_id "
        "WHERE a.execution_id = $1 ORDER BY s.position",
        execution_id,
    )
    events = await pool.fetch(
        "SELECT sequence, event_type, step_id FROM execution_events WHERE execution_id = $1 ORDER BY sequence",
        execution_id,
    )
    execution = await pool.fetchrow(
        "SELECT status, last_event_sequence, started_at IS NOT NULL AS started FROM executions WHERE id = $1",
        execution_id,
    )
    return {
        "execution": tuple(execution),
        "steps": [tuple(row) for row in steps],
        "attempts": [tuple(row) for row in attempts],
        "events": [tuple(row) for row in events],
    }


async def _statements(runtime: Runtime, execution_id: uuid.UUID) -> int:
    """How many statements of their transaction wrote the execution's step rows and events as they are now."""
    return await runtime.pool.fetchval(
        "SELECT count(DISTINCT cmin::text) FROM (SELECT cmin FROM step_executions WHERE execution_id = $1 "
        "UNION ALL SELECT cmin FROM execution_events WHERE execution_id = $1 AND sequence > 1) AS written",
        execution_id,
    )


async def test_a_start_worked_out_ahead_writes_what_the_locked_start_writes_in_one_statement(
    runtime: Runtime, settings: Settings
) -> None:
    gate = asyncio.Event()

    async def slow(step_input: Any, context: ActionContext) -> Any:
        await gate.wait()
        return step_input

    engine = Engine(
        settings,
        runtime.pool,
        runtime.outbox,
        {**load_actions(), "demo.slow": slow},
        ExecutorMetrics(CollectorRegistry()),
    )
    # The first start reads the workflow version, so it is worked out under the lock; the second, ahead.
    locked = await _requested(runtime, settings, "ahead.graph", DEFINITION)
    await engine.handle_request(locked)
    ahead = await _requested(runtime, settings, "ahead.graph", DEFINITION)
    await engine.handle_request(ahead)

    assert await _written(runtime, ahead.execution_id) == await _written(runtime, locked.execution_id)
    started = await _written(runtime, ahead.execution_id)
    assert started["execution"] == ("running", 8, True)
    assert [step[:5] for step in started["steps"]] == [
        ("first", "action", "completed", 1, None),
        ("never", "action", "skipped", 0, None),
        ("slow", "action", "running", 1, engine.worker),
        ("last", "action", "pending", 0, None),
    ]
    assert [attempt[:4] for attempt in started["attempts"]] == [("first", 0, 1, "completed"), ("slow", 0, 1, "running")]
    assert await _statements(runtime, locked.execution_id) > 1  # the step rows first, then a skip, an attempt…
    assert await _statements(runtime, ahead.execution_id) == 1

    gate.set()  # the attempts started ahead run once their start committed, like any other

    async def completed() -> bool:
        statuses = await runtime.pool.fetch(
            "SELECT status FROM executions WHERE id = ANY($1::uuid[])", [locked.execution_id, ahead.execution_id]
        )
        return [row["status"] for row in statuses] == ["completed", "completed"]

    await eventually(completed, timeout=30)
    assert await _written(runtime, ahead.execution_id) == await _written(runtime, locked.execution_id)


async def test_a_start_worked_out_ahead_applies_only_to_the_execution_as_created(
    runtime: Runtime, settings: Settings
) -> None:
    engine = Engine(settings, runtime.pool, runtime.outbox, load_actions(), ExecutorMetrics(CollectorRegistry()))
    definition = {"steps": [{"id": "only", "type": "action", "action": "core.noop"}]}
    await engine.handle_request(await _requested(runtime, settings, "ahead.guard", definition))  # caches the graph
    started = await _requested(runtime, settings, "ahead.guard", definition)
    cancelled = await _requested(runtime, settings, "ahead.guard", definition)
    await engine.handle_control(
        CancelExecution(tenant_id=cancelled.tenant_id, execution_id=cancelled.execution_id, reason="test")
    )

    for request in (started, started, cancelled):  # the first request twice, as a redelivery would bring it
        await engine.handle_request(request)

    pool = runtime.pool
    assert (await _written(runtime, started.execution_id))["events"] == [
        (1, "WORKFLOW_CREATED", None),
        (2, "WORKFLOW_STARTED", None),
        (3, "TASK_CREATED", "only"),
        (4, "TASK_STARTED", "only"),
        (5, "TASK_COMPLETED", "only"),
        (6, "WORKFLOW_COMPLETED", None),
    ]
    assert await pool.fetchval("SELECT count(*) FROM task_attempts WHERE execution_id = $1", started.execution_id) == 1
    assert await _written(runtime, cancelled.execution_id) == {
        "execution": ("cancelled", 2, False),
        "steps": [],
        "attempts": [],
        "events": [(1, "WORKFLOW_CREATED", None), (2, "WORKFLOW_CANCELLED", None)],
    }


async def test_a_start_that_needs_the_database_is_worked_out_under_the_lock(
    runtime: Runtime, settings: Settings
) -> None:
    engine = Engine(settings, runtime.pool, runtime.outbox, load_actions(), ExecutorMetrics(CollectorRegistry()))
    # Built-in steps first, then what writes rows of other tables: a timer for the sleep and the execution's.
    definition = {
        "steps": [
            {"id": "first", "type": "action", "action": "core.echo", "input": "{{ input.n }}"},
            {"id": "nap", "type": "sleep", "until": "2099-01-01T00:00:00+00:00", "needs": ["first"]},
        ],
        "timeout": 7200,
    }
    locked = await _requested(runtime, settings, "ahead.timers", definition)
    await engine.handle_request(locked)
    again = await _requested(runtime, settings, "ahead.timers", definition)
    await engine.handle_request(again)

    assert await _written(runtime, again.execution_id) == await _written(runtime, locked.execution_id)
    assert (await _written(runtime, again.execution_id))["execution"] == ("running", 6, True)
    assert await _statements(runtime, again.execution_id) > 1  # worked out again, locked
    timers = await runtime.pool.fetch(
        "SELECT kind, status FROM timers WHERE execution_id = $1 ORDER BY kind", again.execution_id
    )
    assert [(timer["kind"], timer["status"]) for timer in timers] == [
        ("execution_timeout", "pending"),
        ("sleep", "pending"),
    ]
