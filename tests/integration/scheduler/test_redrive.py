"""Invariant 1: work whose message was lost (broker data loss, dead letter) is re-sent from PostgreSQL."""

from __future__ import annotations

from flowline.db.workflows import create_workflow
from flowline.executions import start_execution
from flowline.messages import ExecutionRequested, RequestMessage, decoder
from flowline.runtime import Runtime
from flowline.settings import Settings
from flowline_scheduler.redrive import Redrive

from tests.support import read_topic


async def test_a_pending_execution_whose_request_was_lost_is_requested_again(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    async with pool.acquire() as connection, connection.transaction():
        await create_workflow(
            connection,
            tenant_id=tenant_id,
            ref="demo.lost",
            label=None,
            description=None,
            tags=[],
            enabled=True,
            definition={"steps": [{"id": "a", "type": "action", "action": "core.noop"}]},
            input_schema=None,
            output_schema=None,
            created_by=None,
        )
        started = await start_execution(
            connection,
            settings.topics,
            tenant_id=tenant_id,
            workflow_ref="demo.lost",
            version=None,
            execution_input={},
            idempotency_key=None,
            triggered_by="test",
        )
    await pool.execute("DELETE FROM outbox")  # the request was published, then the broker lost it

    redrive = Redrive(pool, runtime.outbox, settings.topics, after_seconds=30, interval_seconds=1)
    await redrive.start(loops=1)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # too recent to be considered lost

    await pool.execute("UPDATE executions SET created_at = now() - interval '1 minute'")
    await redrive.start(loops=1)
    [record] = await read_topic(settings, settings.topics.requests, 1)
    message = decoder(RequestMessage).decode(record.value)
    assert isinstance(message, ExecutionRequested)
    assert message.execution_id == started.id
