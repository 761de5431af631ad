"""A message on an internal topic that names another tenant's execution (or another execution's row) changes nothing.

Anyone who could produce to the internal topics once could cancel, start or advance any execution of any tenant:
the executor looked its rows up by id alone. Now every lookup also checks the tenant (and an execution's step or
promise, the execution), and the consumer dead-letters what names another tenant's execution.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
from flowline.domain.actions import load_actions
from flowline.kafka.consumer import MessageRefused
from flowline.messages import (
    AdvanceExecution,
    CancelExecution,
    ExecutionRequested,
    PromiseSettled,
    RequestMessage,
    SubmitExecution,
    TaskDispatched,
    TimerFired,
    decoder,
    encode,
)
from flowline.runtime.ids import uuid7
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.main import commands_consumer
from flowline_executor.metrics import ExecutorMetrics
from prometheus_client import CollectorRegistry

from tests.support import define_and_start, eventually, read_topic

WAITING = {"steps": [{"id": "approval", "type": "wait"}]}
ECHO = {"steps": [{"id": "echo", "type": "action", "action": "core.echo", "input": "{{ input }}"}]}


def _engine(runtime: Runtime, settings: Settings) -> Engine:
    # Steps go through the tasks topic, so that a step waits scheduled for its TaskDispatched.
    return Engine(
        msgspec.structs.replace(settings, eager_dispatch=False),
        runtime.pool,
        runtime.outbox,
        load_actions(),
        ExecutorMetrics(CollectorRegistry()),
    )


async def _started(runtime: Runtime, settings: Settings, ref: str, definition: dict[str, Any]) -> ExecutionRequested:
    """A pending execution of tenant ``dev`` and the request that starts it."""
    started = await define_and_start(runtime.pool, settings, ref, definition, {"n": 1})
    (row,) = [row for row in started.outbox if row.topic == settings.topics.requests]
    request = decoder(RequestMessage).decode(row.payload)
    assert isinstance(request, ExecutionRequested)
    return request


async def _other_tenant(pool: asyncpg.Pool) -> uuid.UUID:
    tenant_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO tenants (id, slug, name) VALUES ($1, 'intruder', 'intruder') RETURNING id", uuid7()
    )
    return tenant_id


async def _state(pool: asyncpg.Pool) -> dict[str, Any]:
    """Every row a message could change."""
    queries = {
        "executions": "SELECT id, tenant_id, status, last_event_sequence, started_at, cancelled_at, output, error "
        "FROM executions ORDER BY id",
        "steps": "SELECT id, status, generation, attempts, owner, input, output, error FROM step_executions "
        "ORDER BY id",
        "attempts": "SELECT id, status FROM task_attempts ORDER BY id",
        "timers": "SELECT id, status FROM timers ORDER BY id",
        "promises": "SELECT id, status, value FROM promises ORDER BY id",
        "events": "SELECT execution_id, sequence FROM execution_events ORDER BY execution_id, sequence",
        "inbox": "SELECT consumer, message_id FROM inbox ORDER BY message_id",
    }
    return {name: [tuple(row) for row in await pool.fetch(query)] for name, query in queries.items()}


async def test_messages_naming_another_tenant_are_refused_and_change_nothing(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    engine = _engine(runtime, settings)
    running_request = await _started(runtime, settings, "plane.wait", WAITING)
    await engine.handle_request(running_request)  # running, its wait step waiting on a promise
    running = running_request.execution_id
    pending = await _started(runtime, settings, "plane.wait", WAITING)  # its version's graph is cached now
    scheduled_request = await _started(runtime, settings, "plane.echo", ECHO)
    await engine.handle_request(scheduled_request)  # running, its step scheduled for the tasks topic
    scheduled = scheduled_request.execution_id
    step = await pool.fetchrow("SELECT id, step_id FROM step_executions WHERE execution_id = $1", scheduled)
    assert await pool.fetchval("SELECT status FROM step_executions WHERE id = $1", step["id"]) == "scheduled"
    promise = await pool.fetchrow("SELECT id, step_execution_id FROM promises WHERE execution_id = $1", running)
    intruder = await _other_tenant(pool)
    before = await _state(pool)

    forged_commands: list[Any] = [
        msgspec.structs.replace(pending, tenant_id=intruder),  # carries the execution: the start worked out ahead
        msgspec.structs.replace(pending, tenant_id=intruder, created=None),  # the start under the lock
        ExecutionRequested(tenant_id=intruder, execution_id=pending.execution_id),  # the request of a retry
        CancelExecution(tenant_id=intruder, execution_id=running, reason="mine now"),
        TimerFired(tenant_id=intruder, execution_id=running, timer_id=uuid7(), kind="execution_timeout"),
        AdvanceExecution(tenant_id=intruder, execution_id=scheduled),
        PromiseSettled(
            tenant_id=intruder,
            execution_id=running,
            promise_id=promise["id"],
            step_execution_id=promise["step_execution_id"],
        ),
    ]
    for message in forged_commands:
        with pytest.raises(MessageRefused, match=f"tenant {intruder} has no execution"):
            await engine.handle_command(message)
    dispatched = TaskDispatched(
        tenant_id=intruder,
        execution_id=scheduled,
        step_execution_id=step["id"],
        step_id=step["step_id"],
        generation=0,
        attempt=1,
    )
    with pytest.raises(MessageRefused):
        await engine.handle_task(dispatched)

    assert await _state(pool) == before
    assert engine.executor.slots.busy == 0  # the refused claim gave its slot back


async def test_a_message_naming_a_row_of_another_execution_changes_nothing(
    runtime: Runtime, settings: Settings
) -> None:
    """A promise (or step) of one execution named in a message to another, of the same tenant, is not touched."""
    pool = runtime.pool
    engine = _engine(runtime, settings)
    first, second = [await _started(runtime, settings, "plane.wait", WAITING) for _ in range(2)]
    for request in (first, second):
        await engine.handle_request(request)
    # The second's promise is resolved, but the message that would say so is sent to the first.
    promise = await pool.fetchrow(
        "UPDATE promises SET status = 'resolved', value = '\"yes\"' WHERE execution_id = $1 "
        "RETURNING id, step_execution_id",
        second.execution_id,
    )
    before = await _state(pool)
    misdirected = PromiseSettled(
        tenant_id=first.tenant_id,
        execution_id=first.execution_id,
        promise_id=promise["id"],
        step_execution_id=promise["step_execution_id"],
    )
    await engine.handle_command(misdirected)
    after = await _state(pool)
    assert after["steps"] == before["steps"] and after["events"] == before["events"]


async def test_the_executor_dead_letters_what_another_tenant_sent_and_goes_on(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    engine = _engine(runtime, settings)
    request = await _started(runtime, settings, "plane.wait", WAITING)
    await engine.handle_request(request)
    intruder = await _other_tenant(pool)
    key = str(request.execution_id).encode()
    forged = encode(CancelExecution(tenant_id=intruder, execution_id=request.execution_id, reason="mine now"))
    # A submission belongs on the submissions topic: on the internal requests topic it does not even decode.
    misplaced = encode(SubmitExecution(id=uuid.uuid4(), tenant="dev", workflow="plane.wait"))
    honest = encode(CancelExecution(tenant_id=request.tenant_id, execution_id=request.execution_id, reason="done"))
    for topic, value in (
        (settings.topics.control, forged),
        (settings.topics.requests, misplaced),
        (settings.topics.control, honest),
    ):
        await runtime.producer.send_and_wait(topic, value, key=key)

    consumer = commands_consumer(runtime, engine, name="test-commands")
    await consumer.start()
    try:

        async def cancelled() -> bool:
            await consumer.poll_once()
            status = await pool.fetchval("SELECT status FROM executions WHERE id = $1", request.execution_id)
            return bool(status == "cancelled")

        await eventually(cancelled, timeout=60)
    finally:
        await consumer.stop()

    dead = await read_topic(settings, settings.topics.dead_letter, 2)
    assert sorted(record.value for record in dead) == sorted([forged, misplaced])
    errors = {record.value: dict(record.headers)["error"] for record in dead}
    assert errors[forged] == f"refused: tenant {intruder} has no execution {request.execution_id}".encode()
    assert errors[misplaced].startswith(b"cannot decode")
    error = await pool.fetchval("SELECT error FROM executions WHERE id = $1", request.execution_id)
    assert error["message"] == "done"
    assert await pool.fetchval("SELECT count(*) FROM executions") == 1  # the misplaced submission started nothing
