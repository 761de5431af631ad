"""workflow steps: a child execution started, awaited, and its output or failure handed to the parent."""

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

CHILD = {
    "ref": "demo.child",
    "definition": {
        "steps": [{"id": "shout", "type": "action", "action": "core.transform", "input": "{{ input.word | upper }}"}],
        "output": {"shouted": "{{ steps.shout.output }}"},
    },
}
FAILING_CHILD = {
    "ref": "demo.failing",
    "definition": {"steps": [{"id": "boom", "type": "action", "action": "core.fail", "input": {"message": "nope"}}]},
}


def _parent(ref: str, child: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "definition": {
            "steps": [
                {"id": "call", "type": "workflow", "workflow": child, "input": {"word": "{{ input.word }}"}},
                {
                    "id": "after",
                    "type": "action",
                    "action": "core.echo",
                    "needs": ["call"],
                    "input": "{{ steps.call.output.shouted }}!",
                },
            ],
            "output": "{{ steps.after.output }}",
        },
    }


async def _owners(settings: Settings, *execution_ids: str) -> dict[str, str | None]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT id::text, owned_by FROM executions WHERE id = ANY($1::uuid[])", list(execution_ids)
        )
    finally:
        await connection.close()
    return {row["id"]: row["owned_by"] for row in rows}


async def _run(client: httpx.AsyncClient, ref: str, run_input: dict[str, Any]) -> dict[str, Any]:
    execution_id = (await client.post(f"/workflows/{ref}/execute", json={"input": run_input})).json()["executionId"]
    for _ in range(600):
        body: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution did not finish: {body}")


async def test_a_child_execution_hands_its_output_to_the_parent(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        for workflow in (CHILD, _parent("demo.parent", "demo.child")):
            assert (await define(client, workflow)).status_code == 201
        parent = await _run(client, "demo.parent", {"word": "hey"})
        assert parent["status"] == "completed", parent
        assert parent["output"] == "HEY!"
        call = parent["steps"][0]
        assert call["output"] == {"shouted": "HEY"}
        child = (await client.get(f"/executions/{call['input']['childExecutionId']}")).json()
        events = (await client.get(f"/executions/{parent['id']}/events")).json()["events"]
    assert child["status"] == "completed"
    child_events = [(event["event"], event["data"]) for event in events if event["event"].startswith("CHILD_")]
    assert [name for name, _ in child_events] == [
        "CHILD_WORKFLOW_INITIATED",
        "CHILD_WORKFLOW_STARTED",
        "CHILD_WORKFLOW_COMPLETED",
    ]
    assert {data["childExecutionId"] for _, data in child_events} == {child["id"]}
    assert child["parentExecutionId"] == parent["id"]
    assert child["parentStepId"] == "call"
    assert child["rootExecutionId"] == parent["id"]
    assert child["triggeredBy"] == "workflow"
    assert child["startedBy"] == f"parent:{parent['id']}"
    assert parent["startedBy"].startswith("api-key:")
    owners = await _owners(settings, parent["id"], child["id"])
    assert owners[parent["id"]] is not None
    assert owners[child["id"]] == owners[parent["id"]]  # a child belongs to whoever owns its parent


async def test_a_failed_child_fails_the_step(api_url: str, api_headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        for workflow in (FAILING_CHILD, _parent("demo.sad", "demo.failing")):
            assert (await define(client, workflow)).status_code == 201
        parent = await _run(client, "demo.sad", {"word": "hey"})
        missing = _parent("demo.orphan", "demo.missing")
        assert (await define(client, missing)).status_code == 201
        orphan = await _run(client, "demo.orphan", {"word": "x"})
    assert parent["status"] == "failed"
    assert "nope" in parent["error"]["message"]
    assert [step["status"] for step in parent["steps"]] == ["failed", "cancelled"]
    assert orphan["status"] == "failed"
    assert "does not exist" in orphan["error"]["message"]


async def test_cancelling_the_parent_cancels_the_child(
    api_url: str, api_headers: dict[str, str], tenant: str, settings: Settings
) -> None:
    sleeper = {"ref": "demo.sleeper", "definition": {"steps": [{"id": "long", "type": "sleep", "duration": "1h"}]}}
    waiting_parent = {
        "ref": "demo.waiting",
        "definition": {"steps": [{"id": "call", "type": "workflow", "workflow": "demo.sleeper"}]},
    }
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        for workflow in (sleeper, waiting_parent):
            assert (await define(client, workflow)).status_code == 201
        parent_id = (await client.post("/workflows/demo.waiting/execute", json={})).json()["executionId"]
        for _ in range(400):
            parent = (await client.get(f"/executions/{parent_id}")).json()
            child_id = (parent["steps"][0]["input"] or {}).get("childExecutionId") if parent["steps"] else None
            if child_id and (await client.get(f"/executions/{child_id}")).json()["status"] == "running":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the child never started: {parent}")

        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            cancel = {
                "type": "CancelExecution",
                "id": str(uuid.uuid4()),
                "tenant_id": await _tenant_id(settings, tenant),
                "execution_id": parent_id,
                "requested_by": "test",
            }
            await producer.send_and_wait(settings.topics.control, json.dumps(cancel).encode(), key=parent_id.encode())
        finally:
            await producer.stop()
        for _ in range(400):
            child = (await client.get(f"/executions/{child_id}")).json()
            if child["status"] == "cancelled":
                break
            await asyncio.sleep(0.05)
    assert child["status"] == "cancelled"
    assert "parent" in child["error"]["message"]
    assert child["cancelledBy"] == "parent"


async def _tenant_id(settings: Settings, tenant: str) -> str:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return str(await connection.fetchval("SELECT id FROM tenants WHERE slug = $1", tenant))
    finally:
        await connection.close()


async def test_a_workflow_that_starts_itself_stops_at_the_depth_limit(
    api_url: str, api_headers: dict[str, str]
) -> None:
    recursive = {
        "ref": "demo.forever",
        "definition": {"steps": [{"id": "again", "type": "workflow", "workflow": "demo.forever"}]},
    }
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        assert (await define(client, recursive)).status_code == 201
        top = await _run(client, "demo.forever", {})
    assert top["status"] == "failed"
    assert "nest 20 deep" in top["error"]["message"]


async def test_a_failed_child_is_retried_as_a_new_child(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    retried = _parent("demo.retrying", "demo.failing")
    retried["definition"]["steps"][0]["retry"] = {"maxAttempts": 2, "backoff": "fixed", "initialInterval": 0.1}
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        for workflow in (FAILING_CHILD, retried):
            assert (await define(client, workflow)).status_code == 201
        parent = await _run(client, "demo.retrying", {"word": "x"})
    assert parent["status"] == "failed"
    assert parent["steps"][0]["attempts"] == 2
    connection = await asyncpg.connect(settings.database_url)
    try:
        children = await connection.fetch(
            "SELECT status FROM executions WHERE parent_execution_id = $1", uuid.UUID(parent["id"])
        )
    finally:
        await connection.close()
    assert [child["status"] for child in children] == ["failed", "failed"]
