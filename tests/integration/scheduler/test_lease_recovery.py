"""Invariant 5: the work of a dead executor is found through its expired lease and runs again."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from flowline.domain.actions import ActionContext, load_actions
from flowline.messages import AdvanceExecution, ControlMessage, ExecutionRequested, TaskDispatched, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.metrics import ExecutorMetrics
from flowline_scheduler.leases import LOST_ATTEMPTS_ALLOWED, LeaseRecovery
from flowline_scheduler.metrics import SchedulerMetrics
from prometheus_client import CollectorRegistry

from tests.support import define_and_start, read_topic

DEFINITION = {"steps": [{"id": "only", "type": "action", "action": "core.echo", "input": "{{ input.word }}"}]}


async def _dispatched(settings: Settings, count: int) -> list[TaskDispatched]:
    records = await read_topic(settings, settings.topics.tasks, count)
    return [decoder(TaskDispatched).decode(record.value) for record in records]


async def test_an_attempt_whose_worker_died_is_dispatched_again(runtime: Runtime, settings: Settings) -> None:
    pool = runtime.pool
    started = await define_and_start(pool, settings, "demo.lease", DEFINITION, {"word": "again"})
    # The doomed worker starts the step (claiming it under its lease) and then stops answering.
    unblock = asyncio.Event()

    async def hang(step_input: Any, context: ActionContext) -> Any:
        await unblock.wait()
        return "late"

    doomed = Engine(
        _with_worker(settings, "doomed"), pool, runtime.outbox, {"core.echo": hang}, ExecutorMetrics(runtime.registry)
    )
    await doomed.handle_request(ExecutionRequested(tenant_id=await _tenant(pool), execution_id=started.id))
    step = await pool.fetchrow("SELECT id, owner, status FROM step_executions")
    assert (step["owner"], step["status"]) == ("doomed", "running")

    registry = CollectorRegistry()
    recovery = LeaseRecovery(pool, runtime.outbox, settings.topics, SchedulerMetrics(registry), interval_seconds=0.1)
    await recovery.start(loops=1)
    assert await pool.fetchval("SELECT status FROM step_executions WHERE id = $1", step["id"]) == "running"

    await pool.execute("UPDATE step_executions SET lease_expires_at = now() - interval '1 second'")
    await recovery.start(loops=1)
    attempt = await pool.fetchrow("SELECT status, error FROM task_attempts WHERE number = 1")
    assert attempt["status"] == "failed"
    assert "lease expired: worker doomed" in attempt["error"]["message"]
    [second] = await _dispatched(settings, 1)
    assert (second.step_execution_id, second.attempt) == (step["id"], 2)
    assert registry.get_sample_value("flowline_lease_recoveries_total", {"outcome": "redispatched"}) == 1

    # Another worker picks it up and finishes the execution; the dead worker's late result is ignored.
    rescuer = Engine(
        _with_worker(settings, "rescuer"), pool, runtime.outbox, load_actions(), ExecutorMetrics(CollectorRegistry())
    )
    await rescuer.handle_task(second)
    await rescuer.drain(grace_seconds=10)
    unblock.set()
    await doomed.drain(grace_seconds=10)
    execution = await pool.fetchrow("SELECT status, output FROM executions WHERE id = $1", started.id)
    assert (execution["status"], execution["output"]) == ("completed", {"only": "again"})
    attempts = await pool.fetch("SELECT number, status, worker FROM task_attempts ORDER BY number")
    assert [(a["number"], a["status"], a["worker"]) for a in attempts] == [
        (1, "failed", "doomed"),
        (2, "completed", "rescuer"),
    ]


def _with_worker(settings: Settings, worker_id: str) -> Settings:
    return msgspec.structs.replace(settings, worker_id=worker_id)


async def test_a_step_that_keeps_losing_its_worker_fails(runtime: Runtime, settings: Settings) -> None:
    pool = runtime.pool
    started = await define_and_start(pool, settings, "demo.crasher", DEFINITION, {"word": "x"})
    never = asyncio.Event()

    async def hang(step_input: Any, context: ActionContext) -> Any:
        await never.wait()

    registry = CollectorRegistry()
    recovery = LeaseRecovery(pool, runtime.outbox, settings.topics, SchedulerMetrics(registry), interval_seconds=0.1)
    worker = Engine(
        _with_worker(settings, "w"), pool, runtime.outbox, {"core.echo": hang}, ExecutorMetrics(runtime.registry)
    )
    await worker.handle_request(ExecutionRequested(tenant_id=await _tenant(pool), execution_id=started.id))
    for number in range(1, LOST_ATTEMPTS_ALLOWED + 2):  # the step's 1 attempt, plus the allowance, all lost
        await pool.execute("UPDATE step_executions SET lease_expires_at = now() - interval '1 second'")
        await recovery.start(loops=1)
        if number <= LOST_ATTEMPTS_ALLOWED:
            [dispatch] = [
                decoder(TaskDispatched).decode(r.value)
                for r in await read_topic(settings, settings.topics.tasks, number)
                if decoder(TaskDispatched).decode(r.value).attempt == number + 1
            ]
            await worker.handle_task(dispatch)
    step = await pool.fetchrow("SELECT status, attempts, error FROM step_executions")
    assert step["status"] == "failed" and step["attempts"] == LOST_ATTEMPTS_ALLOWED + 1
    assert "gave up after" in step["error"]["message"]
    recoveries = {
        outcome: registry.get_sample_value("flowline_lease_recoveries_total", {"outcome": outcome})
        for outcome in ("redispatched", "failed")
    }
    assert recoveries == {"redispatched": LOST_ATTEMPTS_ALLOWED, "failed": 1}
    [advance] = await read_topic(settings, settings.topics.control, 1)
    assert isinstance(decoder(ControlMessage).decode(advance.value), AdvanceExecution)
    await worker.handle_control(decoder(ControlMessage).decode(advance.value))
    assert await pool.fetchval("SELECT status FROM executions WHERE id = $1", started.id) == "failed"
    await worker.drain(grace_seconds=0)


async def _tenant(pool: Any) -> Any:
    return await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
