"""Bulk operations with the services as real processes: the api creates one, the scheduler works it through."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from flowline.messages import EventMessage, OperationEvent, decoder
from flowline.settings import Settings

from tests.support import define

EXECUTIONS = 500
TAG = "bulk-e2e"


@pytest.fixture
async def client(api_url: str, api_headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=30) as client:
        yield client


async def _all_in(client: httpx.AsyncClient, status: str) -> bool:
    """Whether every tagged execution has ``status``."""
    page = (await client.get("/executions", params={"tag": TAG, "status": status, "limit": 1})).json()
    return bool(page["total"] == EXECUTIONS)


async def _until(check: Any, timeout: float = 180) -> Any:
    """The first truthy answer of ``check()`` (bounded, never a timing assertion)."""
    async with asyncio.timeout(timeout):
        while not (answer := await check()):
            await asyncio.sleep(0.2)
    return answer


async def _operation_event(settings: Settings, operation_id: str) -> OperationEvent:
    """The operation's event on the events topic, read from the beginning."""
    events = decoder(EventMessage)
    consumer = AIOKafkaConsumer(
        settings.topics.events, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while True:
                for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                    for record in records:
                        event = events.decode(record.value)
                        if isinstance(event, OperationEvent) and str(event.operation_id) == operation_id:
                            return event
    finally:
        await consumer.stop()


async def test_a_bulk_cancel_by_filter_cancels_500_sleeping_executions(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    created = await define(
        client, {"ref": "demo.nap", "definition": {"steps": [{"id": "nap", "type": "sleep", "duration": "1h"}]}}
    )
    assert created.status_code == 201, created.text
    for start in range(0, EXECUTIONS, 50):
        started = await asyncio.gather(
            *(
                client.post("/executions", json={"workflow": "demo.nap", "input": {}, "tags": [TAG]})
                for _ in range(start, start + 50)
            )
        )
        assert {response.status_code for response in started} == {202}
    await _until(lambda: _all_in(client, "running"))
    selection = {"filter": {"workflow": "demo.nap", "tag": [TAG], "status": ["pending", "running"]}}

    dry_run = await client.post("/executions/bulk/cancel", json={**selection, "dryRun": True})
    accepted = await client.post("/executions/bulk/cancel", json={**selection, "reason": "started by mistake"})

    assert (dry_run.status_code, dry_run.json()["total"]) == (200, EXECUTIONS)
    assert accepted.status_code == 202, accepted.text
    operation_id = accepted.json()["id"]
    assert accepted.json()["total"] == EXECUTIONS

    async def completed() -> dict[str, Any] | None:
        operation: dict[str, Any] = (await client.get(f"/bulk-operations/{operation_id}")).json()
        return operation if operation["status"] == "completed" else None

    operation = await _until(completed)
    assert {key: operation[key] for key in ("total", "succeeded", "failed", "skipped", "errors")} == {
        "total": EXECUTIONS,
        "succeeded": EXECUTIONS,
        "failed": 0,
        "skipped": 0,
        "errors": [],
    }
    await _until(lambda: _all_in(client, "cancelled"))
    connection = await asyncpg.connect(settings.database_url)
    try:
        cancelled_by = await connection.fetchval(
            "SELECT count(*) FROM executions WHERE status = 'cancelled' AND cancelled_by = $1",
            f"bulk-operation:{operation_id}",
        )
        timers_cancelled = await connection.fetchval(  # of this operation's executions: the stack is shared
            "SELECT count(DISTINCT v.execution_id) FROM execution_events v JOIN executions e ON e.id = v.execution_id "
            "WHERE v.event_type = 'TIMER_CANCELLED' AND e.cancelled_by = $1",
            f"bulk-operation:{operation_id}",
        )
    finally:
        await connection.close()
    assert cancelled_by == timers_cancelled == EXECUTIONS
    event = await _operation_event(settings, operation_id)
    assert event.event == "OPERATION_COMPLETED"
    assert event.operation_id == uuid.UUID(operation_id)
    assert event.data == {
        "id": operation_id,
        "kind": "cancel",
        "status": "completed",
        "total": EXECUTIONS,
        "succeeded": EXECUTIONS,
        "failed": 0,
        "skipped": 0,
    }
