"""Retries wait on durable timers, sleep steps are timers, cancellation stops timers: all through the services."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from flowline.settings import Settings

from tests.support import define


def _api(api_url: str, api_headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10)


async def _run(client: httpx.AsyncClient, ref: str, definition: dict[str, Any], run_input: dict[str, Any]) -> str:
    created = await define(client, {"ref": ref, "definition": definition})
    assert created.status_code == 201, created.text
    accepted = await client.post(f"/workflows/{ref}/execute", json={"input": run_input})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["executionId"])


async def _wait_for(client: httpx.AsyncClient, execution_id: str, statuses: set[str]) -> dict[str, Any]:
    for _ in range(600):
        body: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} never reached {statuses}: {body}")


async def _events(settings: Settings, execution_id: str) -> list[tuple[str, dict[str, Any]]]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT event_type, data FROM execution_events WHERE execution_id = $1 ORDER BY sequence",
            uuid.UUID(execution_id),
        )
    finally:
        await connection.close()
    return [(row["event_type"], json.loads(row["data"])) for row in rows]


async def test_a_failing_step_is_retried_on_durable_timers(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    definition = {
        "steps": [
            {
                "id": "flaky",
                "type": "action",
                "action": "core.fail",
                "input": {"message": "still broken", "retryable": True},
                "retry": {"maxAttempts": 3, "backoff": "fixed", "initialInterval": 0.2, "jitter": False},
            }
        ]
    }
    async with _api(api_url, api_headers) as client:
        execution_id = await _run(client, "demo.flaky", definition, {})
        execution = await _wait_for(client, execution_id, {"failed"})
    [step] = execution["steps"]
    assert step["attempts"] == 3
    assert "still broken" in execution["error"]["message"]

    connection = await asyncpg.connect(settings.database_url)
    try:
        attempts = await connection.fetch(
            "SELECT number, status, error FROM task_attempts WHERE execution_id = $1 ORDER BY number",
            uuid.UUID(execution_id),
        )
        timers = await connection.fetch(
            "SELECT kind, status FROM timers WHERE execution_id = $1", uuid.UUID(execution_id)
        )
    finally:
        await connection.close()
    assert [(a["number"], a["status"]) for a in attempts] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert json.loads(attempts[0]["error"])["type"] == "ActionFailed"
    assert [(t["kind"], t["status"]) for t in timers] == [("retry", "fired"), ("retry", "fired")]
    task_failures = [data for event, data in await _events(settings, execution_id) if event == "TASK_FAILED"]
    assert [data["status"] for data in task_failures] == ["scheduled", "scheduled", "failed"]


async def test_a_non_retryable_failure_is_not_retried(api_url: str, api_headers: dict[str, str]) -> None:
    definition = {
        "steps": [
            {
                "id": "final",
                "type": "action",
                "action": "core.fail",
                "input": {"message": "bad request"},
                "retry": {"maxAttempts": 5, "initialInterval": 0.1},
            }
        ]
    }
    async with _api(api_url, api_headers) as client:
        execution = await _wait_for(client, await _run(client, "demo.final", definition, {}), {"failed"})
    assert execution["steps"][0]["attempts"] == 1


async def test_a_sleep_step_waits_on_a_timer(api_url: str, api_headers: dict[str, str], settings: Settings) -> None:
    definition = {
        "steps": [
            {"id": "nap", "type": "sleep", "duration": "300ms"},
            {"id": "after", "type": "action", "action": "core.echo", "needs": ["nap"], "input": "{{ input.word }}"},
        ],
        "output": "{{ steps.after.output }}",
    }
    async with _api(api_url, api_headers) as client:
        execution_id = await _run(client, "demo.nap", definition, {"word": "rested"})
        execution = await _wait_for(client, execution_id, {"completed", "failed"})
    assert execution["status"] == "completed", execution
    assert execution["output"] == "rested"
    nap, after = execution["steps"]
    assert nap["stepId"] == "nap" and "firedAt" in nap["output"]
    assert after["startedAt"] >= nap["completedAt"]
    events = [event for event, _ in await _events(settings, execution_id)]
    assert events.index("TIMER_STARTED") < events.index("TIMER_FIRED") < events.index("WORKFLOW_COMPLETED")


async def test_cancelling_a_sleeping_execution_cancels_its_timer(
    api_url: str, api_headers: dict[str, str], tenant: str, settings: Settings
) -> None:
    definition = {"steps": [{"id": "long", "type": "sleep", "duration": "1h"}]}
    async with _api(api_url, api_headers) as client:
        execution_id = await _run(client, "demo.long", definition, {})
        await _wait_for(client, execution_id, {"running"})
        connection = await asyncpg.connect(settings.database_url)
        try:
            for _ in range(200):  # the timer is stored in the transaction that starts the sleep step
                if await connection.fetchval(
                    "SELECT count(*) FROM timers WHERE execution_id = $1", uuid.UUID(execution_id)
                ):
                    break
                await asyncio.sleep(0.05)
            tenant_id = await connection.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant)
        finally:
            await connection.close()
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            cancel = {
                "type": "CancelExecution",
                "id": str(uuid.uuid4()),
                "tenant_id": str(tenant_id),
                "execution_id": execution_id,
                "reason": "not needed",
                "requested_by": "test",
            }
            await producer.send_and_wait(
                settings.topics.control, json.dumps(cancel).encode(), key=execution_id.encode()
            )
        finally:
            await producer.stop()
        execution = await _wait_for(client, execution_id, {"cancelled"})
    assert execution["cancelledBy"] == "test" and execution["cancelledAt"]
    assert execution["steps"][0]["status"] == "cancelled"
    events = [event for event, _ in await _events(settings, execution_id)]
    assert events[-3:] == ["TIMER_CANCELLED", "TASK_CANCELLED", "WORKFLOW_CANCELLED"]


async def test_an_execution_past_its_timeout_fails(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    definition = {"timeout": 0.5, "steps": [{"id": "long", "type": "sleep", "duration": "1h"}]}
    async with _api(api_url, api_headers) as client:
        execution_id = await _run(client, "demo.deadline", definition, {})
        execution = await _wait_for(client, execution_id, {"failed", "completed"})
    assert execution["status"] == "failed"
    assert execution["error"]["type"] == "Timeout"
    assert execution["steps"][0]["status"] == "cancelled"
    events = [event for event, _ in await _events(settings, execution_id)]
    assert events[-3:] == ["TIMER_CANCELLED", "TASK_CANCELLED", "WORKFLOW_FAILED"]
