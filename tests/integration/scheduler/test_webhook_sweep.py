"""The webhook sweep against a real PostgreSQL: executions run for real, their events stored and published, but
no events consumer records their deliveries, as when the broker lost the topic's data after the outbox let go.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from flowline.messages import ExecutionEvent
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.webhook_events import DeliveryRecorder
from flowline_scheduler.webhook_sweep import WebhookSweep
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from tests.integration.api.clients import admin_client
from tests.support import define_and_start, run_until_finished

Client = AsyncTestClient  # type: ignore[type-arg]
ONE_STEP = {"steps": [{"id": "only", "type": "action", "action": "core.echo", "input": {"n": "{{ input.n }}"}}]}
RECEIVER = "https://hooks.example.com/in"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Client]:
    async with admin_client(settings) as client:
        yield client


def sweep(runtime: Runtime, metrics: SchedulerMetrics, *, grace: float = 0, batch_size: int = 100) -> WebhookSweep:
    return WebhookSweep(
        runtime.pool,
        metrics,
        lambda: None,
        interval_seconds=10,
        grace_seconds=grace,
        lookback_seconds=3600,
        batch_size=batch_size,
    )


async def create_webhook(api: Client, **fields: Any) -> str:
    response = await api.post("webhooks", json={"url": RECEIVER, **fields})
    assert response.status_code == 201, response.text
    webhook_id: str = response.json()["id"]
    return webhook_id


async def run(runtime: Runtime, settings: Settings, ref: str) -> uuid.UUID:
    started = await define_and_start(runtime.pool, settings, ref, ONE_STEP, {"n": 1})
    await runtime.outbox.publish(started.outbox)
    assert await run_until_finished(runtime, settings, started.id) == "completed"
    execution_id: uuid.UUID = started.id
    return execution_id


async def stored_events(runtime: Runtime, execution_id: uuid.UUID) -> list[ExecutionEvent]:
    """The execution's events as the topic would have carried them."""
    records = await runtime.pool.fetch(
        "SELECT tenant_id, execution_id, sequence, event_type, step_id, task_id, data, occurred_at "
        "FROM execution_events WHERE execution_id = $1 ORDER BY sequence",
        execution_id,
    )
    return [
        ExecutionEvent(
            tenant_id=record["tenant_id"],
            execution_id=record["execution_id"],
            timestamp_ms=int(record["occurred_at"].timestamp() * 1000),
            sequence=record["sequence"],
            event=record["event_type"],
            step_id=record["step_id"],
            task_id=record["task_id"],
            data=record["data"],
            occurred_at=record["occurred_at"],
        )
        for record in records
    ]


async def deliveries(runtime: Runtime) -> list[tuple[str, uuid.UUID, str, int]]:
    records = await runtime.pool.fetch(
        "SELECT webhook_id::text, execution_id, event_type, sequence FROM webhook_deliveries ORDER BY created_at, id"
    )
    return [tuple(record) for record in records]


async def test_events_the_topic_never_brought_get_their_deliveries_from_the_sweep_once(
    runtime: Runtime, settings: Settings, api: Client
) -> None:
    wanted = await create_webhook(api)  # the workflow terminal events
    await create_webhook(api, events=["TASK_FAILED"])
    await create_webhook(api, enabled=False)
    await create_webhook(api, workflows=["demo.elsewhere"])
    heard = await run(runtime, settings, "demo.heard")
    lost = await run(runtime, settings, "demo.lost")
    await create_webhook(api, events=["WORKFLOW_COMPLETED", "TASK_COMPLETED"])  # after both events
    recorder = DeliveryRecorder(runtime.pool, on_new=lambda: None)
    await recorder.handle_events(list(await stored_events(runtime, heard)))  # the topic brought this one's
    registry = CollectorRegistry()
    metrics = SchedulerMetrics(registry)

    assert await sweep(runtime, metrics, grace=3600).sweep() == (0, False)  # within the grace: the topic's turn
    first, second = await asyncio.gather(sweep(runtime, metrics).sweep(), sweep(runtime, metrics).sweep())
    assert first[0] + second[0] == 1
    assert await sweep(runtime, metrics).sweep() == (0, False)
    await recorder.handle_events(list(await stored_events(runtime, lost)))  # the topic brings it after all

    completed = {
        event.execution_id: event.sequence
        for event in [*await stored_events(runtime, heard), *await stored_events(runtime, lost)]
        if event.event == "WORKFLOW_COMPLETED"
    }
    assert await deliveries(runtime) == [
        (wanted, heard, "WORKFLOW_COMPLETED", completed[heard]),
        (wanted, lost, "WORKFLOW_COMPLETED", completed[lost]),
    ]
    payload = await runtime.pool.fetchval("SELECT payload FROM webhook_deliveries WHERE execution_id = $1", lost)
    assert payload["type"] == "WORKFLOW_COMPLETED"
    assert payload["data"]["executionId"] == str(lost) and payload["data"]["workflowRef"] == "demo.lost"
    assert payload["data"]["status"] == "completed"
    assert registry.get_sample_value("flowline_webhook_deliveries_recovered_total") == 1


async def test_a_backlog_is_swept_a_batch_at_a_time(runtime: Runtime, settings: Settings, api: Client) -> None:
    every = ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"]
    webhook = await create_webhook(api, events=every)
    execution_id = await run(runtime, settings, "demo.backlog")
    events = [event for event in await stored_events(runtime, execution_id) if event.event in every]
    small = sweep(runtime, SchedulerMetrics(CollectorRegistry()), batch_size=2)

    passes = []
    while not passes or passes[-1][1]:
        passes.append(await small.sweep())

    assert all(recovered <= 2 for recovered, _ in passes) and sum(recovered for recovered, _ in passes) == len(events)
    assert await deliveries(runtime) == [(webhook, execution_id, event.event, event.sequence) for event in events]


async def test_without_an_enabled_webhook_a_pass_neither_reads_nor_moves_the_cursor(
    runtime: Runtime, settings: Settings, api: Client
) -> None:
    await create_webhook(api, enabled=False)
    await run(runtime, settings, "demo.unheard")
    cursor = await runtime.pool.fetchrow("SELECT * FROM webhook_sweep")

    assert await sweep(runtime, SchedulerMetrics(CollectorRegistry())).sweep() == (0, False)

    assert await runtime.pool.fetchrow("SELECT * FROM webhook_sweep") == cursor
    assert await runtime.pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 0
