"""Built-in actions run inside the change that makes them ready; actions from packs run under a lease."""

from __future__ import annotations

import asyncio
from typing import Any

from flowline.domain.actions import ActionContext, load_actions
from flowline.messages import RequestMessage, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.metrics import ExecutorMetrics
from prometheus_client import CollectorRegistry

from tests.support import define_and_start, eventually

REQUESTS = decoder(RequestMessage)


def _engine(runtime: Runtime, settings: Settings, **actions: Any) -> Engine:
    return Engine(
        settings, runtime.pool, runtime.outbox, {**load_actions(), **actions}, ExecutorMetrics(CollectorRegistry())
    )


async def _start(runtime: Runtime, settings: Settings, engine: Engine, ref: str, definition: dict[str, Any]) -> Any:
    """Store and start an execution, handing its request straight to ``engine`` (no broker in between)."""
    started = await define_and_start(runtime.pool, settings, ref, definition, {"n": 3})
    for row in started.outbox:
        if row.topic == settings.topics.requests:
            await engine.handle_request(REQUESTS.decode(row.payload))
    return started.id


async def test_a_graph_of_builtin_actions_runs_in_the_change_that_starts_it(
    runtime: Runtime, settings: Settings
) -> None:
    engine = _engine(runtime, settings)
    definition = {
        "steps": [
            {"id": "double", "type": "action", "action": "core.transform", "input": {"n": "{{ input.n * 2 }}"}},
            {"id": "broken", "type": "action", "action": "core.fail", "input": "no", "continueOnFailure": True},
            {"id": "note", "type": "action", "action": "core.log", "needs": ["double"], "input": "n={{ input.n }}"},
            {
                "id": "echo",
                "type": "action",
                "action": "core.echo",
                "needs": ["note", "broken"],
                "input": "{{ steps.double.output.n }} {{ steps.broken.status }}",
            },
        ],
        "output": "{{ steps.echo.output }}",
        "timeout": 3600,
    }
    execution_id = await _start(runtime, settings, engine, "instant.graph", definition)

    pool = runtime.pool
    execution = await pool.fetchrow(
        "SELECT status, output, xmin::text AS xid FROM executions WHERE id = $1", execution_id
    )
    assert (execution["status"], execution["output"]) == ("completed", "6 failed")
    steps = await pool.fetch(
        "SELECT step_id, status, attempts, input, output, owner, xmin::text AS xid, "
        "started_at <= completed_at AS ordered FROM step_executions WHERE execution_id = $1 ORDER BY position",
        execution_id,
    )
    assert [(s["step_id"], s["status"], s["attempts"]) for s in steps] == [
        ("double", "completed", 1),
        ("broken", "failed", 1),
        ("note", "completed", 1),
        ("echo", "completed", 1),
    ]
    assert steps[0]["input"] == {"n": 6} and steps[0]["output"] == {"n": 6}
    assert steps[2]["output"] == {"logged": "n=3"}
    assert all(s["owner"] is None and s["ordered"] for s in steps)
    # One transaction wrote the execution's end and every step: no dispatch, no attempt of its own.
    assert {s["xid"] for s in steps} == {execution["xid"]}
    attempts = await pool.fetch(
        "SELECT s.step_id, a.status, a.worker, a.error, a.finished_at >= a.started_at AS ordered, a.duration_ms "
        "FROM task_attempts a JOIN step_executions s ON s.id = a.step_execution_id "
        "WHERE a.execution_id = $1 ORDER BY s.position",
        execution_id,
    )
    assert [(a["step_id"], a["status"]) for a in attempts] == [
        ("double", "completed"),
        ("broken", "failed"),
        ("note", "completed"),
        ("echo", "completed"),
    ]
    assert all(a["worker"] == engine.worker and a["ordered"] and a["duration_ms"] is not None for a in attempts)
    assert attempts[1]["error"]["message"] == "no" and attempts[1]["error"]["retryable"] is False
    # The execution's own timeout no longer waits once it completed.
    timers = await pool.fetch("SELECT kind, status FROM timers WHERE execution_id = $1", execution_id)
    assert [(t["kind"], t["status"]) for t in timers] == [("execution_timeout", "cancelled")]
    events = await pool.fetch(
        "SELECT event_type, step_id FROM execution_events WHERE execution_id = $1 ORDER BY sequence", execution_id
    )
    for_double = [e["event_type"] for e in events if e["step_id"] == "double"]
    assert for_double == ["TASK_CREATED", "TASK_STARTED", "TASK_COMPLETED"]
    assert [e["event_type"] for e in events if e["step_id"] is None] == [
        "WORKFLOW_CREATED",
        "WORKFLOW_STARTED",
        "WORKFLOW_COMPLETED",
    ]


async def test_a_builtin_action_that_fails_waits_for_its_next_attempt_on_a_timer(
    runtime: Runtime, settings: Settings
) -> None:
    engine = _engine(runtime, settings)
    definition = {
        "steps": [
            {
                "id": "flaky",
                "type": "action",
                "action": "core.fail",
                "input": {"message": "not yet", "retryable": True},
                "retry": {
                    "maxAttempts": 2,
                    "backoff": "fixed",
                    "initialInterval": 3600,
                    "maxInterval": 3600,
                    "jitter": False,
                },
            },
            {"id": "after", "type": "action", "action": "core.noop", "needs": ["flaky"]},
        ]
    }
    execution_id = await _start(runtime, settings, engine, "instant.retry", definition)

    pool = runtime.pool
    assert await pool.fetchval("SELECT status FROM executions WHERE id = $1", execution_id) == "running"
    steps = await pool.fetch(
        "SELECT step_id, status, attempts, completed_at, error FROM step_executions WHERE execution_id = $1 "
        "ORDER BY position",
        execution_id,
    )
    assert [(s["step_id"], s["status"], s["attempts"]) for s in steps] == [
        ("flaky", "scheduled", 1),
        ("after", "pending", 0),
    ]
    assert steps[0]["completed_at"] is None and steps[0]["error"]["message"] == "not yet"
    assert await pool.fetchval("SELECT status FROM task_attempts WHERE execution_id = $1", execution_id) == "failed"
    timer = await pool.fetchrow(
        "SELECT kind, status, fire_at > now() + interval '50 minutes' AS later FROM timers WHERE execution_id = $1",
        execution_id,
    )
    assert (timer["kind"], timer["status"], timer["later"]) == ("retry", "pending", True)
    events = [
        e["event_type"]
        for e in await pool.fetch(
            "SELECT event_type FROM execution_events WHERE execution_id = $1 ORDER BY sequence", execution_id
        )
    ]
    assert events == ["WORKFLOW_CREATED", "WORKFLOW_STARTED", "TASK_CREATED", "TASK_STARTED", "TASK_FAILED"]


async def test_an_action_from_a_pack_runs_as_an_attempt_under_a_lease(runtime: Runtime, settings: Settings) -> None:
    gate = asyncio.Event()

    async def slow(step_input: Any, context: ActionContext) -> Any:
        await gate.wait()
        return step_input

    engine = _engine(runtime, settings, **{"demo.slow": slow})
    definition = {
        "steps": [
            {"id": "slow", "type": "action", "action": "demo.slow", "input": "{{ input.n }}"},
            {
                "id": "then",
                "type": "action",
                "action": "core.echo",
                "needs": ["slow"],
                "input": "{{ steps.slow.output }}",
            },
        ],
        "output": "{{ steps.then.output }}",
    }
    execution_id = await _start(runtime, settings, engine, "instant.pack", definition)

    pool = runtime.pool
    slow_step = await pool.fetchrow(
        "SELECT status, owner, lease_expires_at FROM step_executions WHERE execution_id = $1 AND step_id = 'slow'",
        execution_id,
    )
    assert slow_step["status"] == "running" and slow_step["owner"] == engine.worker
    assert slow_step["lease_expires_at"] is not None
    gate.set()

    async def completed() -> bool:
        return await pool.fetchval("SELECT status FROM executions WHERE id = $1", execution_id) == "completed"

    await eventually(completed, timeout=30)
    assert await pool.fetchval("SELECT output FROM executions WHERE id = $1", execution_id) == 3
