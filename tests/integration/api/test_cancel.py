"""A cancel waits for the engine's outcome on the execution's events and answers what the database holds.

No engine runs here: a test applies the cancel as the engine would (the row, then its final event).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import asyncpg
import msgspec
import pytest
from flowline.db.audit import Actor
from flowline.messages import ExecutionEvent, encode
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_api.domain.control.service import ControlService
from flowline_api.domain.streams.hub import StreamHub
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import admin_client
from tests.integration.api.execution_rows import ExecutionRows
from tests.support import eventually

Client = AsyncTestClient  # type: ignore[type-arg]
OPS = Actor(principal="ops", request_id=None)


@pytest.fixture
def rows(pool: asyncpg.Pool) -> ExecutionRows:
    return ExecutionRows(pool)


async def _apply_cancel_as_the_engine(runtime: Runtime, execution_id: uuid.UUID) -> None:
    """The engine's change to the row, committed, then its WORKFLOW_CANCELLED event published."""
    tenant_id = await runtime.pool.fetchval(
        "UPDATE executions SET status = 'cancelled', completed_at = now() WHERE id = $1 RETURNING tenant_id",
        execution_id,
    )
    event = ExecutionEvent(
        tenant_id=tenant_id,
        execution_id=execution_id,
        timestamp_ms=int(time.time() * 1000),
        sequence=2,
        event="WORKFLOW_CANCELLED",
        data={"status": "cancelled"},
    )
    await runtime.producer.send_and_wait(runtime.settings.topics.events, encode(event), key=str(execution_id).encode())


async def test_a_cancel_answers_once_the_engine_applied_it(runtime: Runtime, rows: ExecutionRows) -> None:
    # A wait far longer than the test's bound: only the engine's outcome can end it in time.
    execution_id = await rows.execution(status="running")
    tenant_id = await rows.tenant()
    hub = StreamHub(runtime.settings)
    hub.start()
    service = ControlService(runtime.pool, runtime.outbox, runtime.settings.topics, hub, wait_seconds=600)
    try:
        cancel = asyncio.create_task(service.cancel(tenant_id, execution_id, "not needed", OPS))

        async def waiting_on_events() -> bool:
            return hub.subscribers == 1

        await eventually(waiting_on_events)
        await _apply_cancel_as_the_engine(runtime, execution_id)
        async with asyncio.timeout(30):
            cancelled = await cancel
        assert (cancelled.execution_id, cancelled.status) == (str(execution_id), "cancelled")
        assert cancelled.cancelled_at is not None
        assert hub.subscribers == 0  # the cancel let go of its subscription
    finally:
        await hub.stop()


async def test_a_cancel_without_events_to_follow_answers_the_status_as_it_stands(
    runtime: Runtime, rows: ExecutionRows
) -> None:
    execution_id = await rows.execution(status="running")
    with socket.socket() as unreachable:
        unreachable.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        address = f"127.0.0.1:{unreachable.getsockname()[1]}"
        hub = StreamHub(msgspec.structs.replace(runtime.settings, kafka_bootstrap=address))
        hub.start()
        service = ControlService(runtime.pool, runtime.outbox, runtime.settings.topics, hub, wait_seconds=600)
        try:
            async with asyncio.timeout(30):
                cancelled = await service.cancel(await rows.tenant(), execution_id, "not needed", OPS)
        finally:
            await hub.stop()

    assert cancelled.status == "running"
    assert await runtime.pool.fetchval("SELECT cancelled_by FROM executions WHERE id = $1", execution_id) == "ops"


async def test_a_cancel_not_applied_within_the_wait_answers_202_with_the_status_as_it_stands(
    settings: Settings, rows: ExecutionRows, pool: asyncpg.Pool
) -> None:
    execution_id = await rows.execution(status="running")

    async with admin_client(msgspec.structs.replace(settings, cancel_wait_seconds=0.5)) as api:
        response = await api.post(f"/executions/{execution_id}/cancel", json={"reason": "not needed"})

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running"
    assert response.json()["executionId"] == str(execution_id)
    assert await pool.fetchval("SELECT cancelled_by FROM executions WHERE id = $1", execution_id) is not None
