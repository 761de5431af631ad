"""A child execution's output reaches its parent from the child's row, never through a message: its size is no issue."""

from __future__ import annotations

import asyncio

from flowline.db.events import MAX_EVENT_VALUE_BYTES
from flowline.domain.actions import load_actions
from flowline.messages import ChildExecutionFinished, ControlMessage, decoder
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.main import commands_consumer
from flowline_executor.metrics import ExecutorMetrics
from prometheus_client import CollectorRegistry

from tests.support import define_and_start, eventually, read_topic

CHILD = {
    "steps": [{"id": "big", "type": "action", "action": "core.echo", "input": "{{ input.blob }}"}],
    "output": "{{ steps.big.output }}",
}
PARENT = {
    "steps": [{"id": "call", "type": "workflow", "workflow": "big.child", "input": {"blob": "{{ input.blob }}"}}],
    "output": "{{ steps.call.output | length }}",
}


async def test_a_child_output_over_the_event_bound_reaches_its_parent_whole_and_its_message_stays_small(
    runtime: Runtime, settings: Settings
) -> None:
    blob = "x" * (MAX_EVENT_VALUE_BYTES + 50_000)
    await define_and_start(runtime.pool, settings, "big.child", CHILD, {"blob": ""})
    parent = await define_and_start(runtime.pool, settings, "big.parent", PARENT, {"blob": blob})
    await runtime.outbox.publish(parent.outbox)

    engine = Engine(settings, runtime.pool, runtime.outbox, load_actions(), ExecutorMetrics(CollectorRegistry()))
    consumer = commands_consumer(runtime, engine, name="test-children")
    await consumer.start()
    consuming = asyncio.create_task(consumer.run())
    try:

        async def parent_completed() -> bool:
            status = await runtime.pool.fetchval("SELECT status FROM executions WHERE id = $1", parent.id)
            return bool(status == "completed")

        await eventually(parent_completed, timeout=60)
    finally:
        await consumer.stop()
        await consuming

    assert await runtime.pool.fetchval("SELECT output FROM executions WHERE id = $1", parent.id) == len(blob)
    step_output = await runtime.pool.fetchval(
        "SELECT output FROM step_executions WHERE execution_id = $1 AND step_id = 'call'", parent.id
    )
    assert step_output == blob  # whole, from the child's row
    [finished] = await read_topic(
        settings,
        settings.topics.control,
        1,
        keep=lambda record: b"ChildExecutionFinished" in record.value and str(parent.id).encode() in record.value,
    )
    assert len(finished.value) < 1024
    message = decoder(ControlMessage).decode(finished.value)
    assert isinstance(message, ChildExecutionFinished) and message.execution_id == parent.id
    completed = await runtime.pool.fetchval(
        "SELECT data FROM execution_events "
        "WHERE execution_id = $1 AND step_id = 'call' AND event_type = 'TASK_COMPLETED'",
        parent.id,
    )
    assert completed["output"] == {"omitted": "too large for an event: read it from its row", "bytes": len(blob) + 2}
