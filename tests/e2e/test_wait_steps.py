"""wait steps: promises resolved and rejected through the API, and bounded by a timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support import define

DEFINITION = {
    "steps": [
        {"id": "approval", "type": "wait", "promise": "manager-approval"},
        {
            "id": "after",
            "type": "action",
            "action": "core.echo",
            "needs": ["approval"],
            "input": "approved by {{ steps.approval.output.by }}",
        },
    ],
    "output": "{{ steps.after.output }}",
}


def _api(api_url: str, api_headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10)


async def _wait_for(client: httpx.AsyncClient, execution_id: str, check: Any) -> dict[str, Any]:
    for _ in range(600):
        body: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
        if check(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} never got there: {body}")


def _waiting(body: dict[str, Any]) -> bool:
    return any(step["stepId"] == "approval" and step["status"] == "running" for step in body["steps"])


async def _start(client: httpx.AsyncClient, ref: str, definition: dict[str, Any]) -> str:
    assert (await define(client, {"ref": ref, "definition": definition})).status_code == 201
    execution_id = str((await client.post(f"/workflows/{ref}/execute", json={})).json()["executionId"])
    await _wait_for(client, execution_id, _waiting)
    return execution_id


async def test_a_resolved_promise_completes_the_wait_step(api_url: str, api_headers: dict[str, str]) -> None:
    async with _api(api_url, api_headers) as client:
        execution_id = await _start(client, "demo.approve", DEFINITION)
        unknown = await client.post(f"/executions/{execution_id}/promises/nope/resolve", json={})
        assert unknown.status_code == 404
        resolved = await client.post(
            f"/executions/{execution_id}/promises/manager-approval/resolve", json={"value": {"by": "Grace"}}
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
        again = await client.post(f"/executions/{execution_id}/promises/manager-approval/reject", json={})
        assert again.status_code == 409
        assert "already resolved" in again.json()["detail"]
        execution = await _wait_for(client, execution_id, lambda body: body["status"] != "running")
    assert execution["status"] == "completed", execution
    assert execution["output"] == "approved by Grace"
    assert execution["steps"][0]["output"] == {"by": "Grace"}


async def test_a_rejected_promise_fails_the_wait_step(api_url: str, api_headers: dict[str, str]) -> None:
    async with _api(api_url, api_headers) as client:
        execution_id = await _start(client, "demo.reject", DEFINITION)
        rejected = await client.post(
            f"/executions/{execution_id}/promises/manager-approval/reject", json={"reason": "over budget"}
        )
        assert rejected.status_code == 200
        execution = await _wait_for(client, execution_id, lambda body: body["status"] != "running")
    assert execution["status"] == "failed"
    assert "over budget" in execution["error"]["message"]
    assert [step["status"] for step in execution["steps"]] == ["failed", "cancelled"]


async def test_an_unsettled_promise_times_out(api_url: str, api_headers: dict[str, str]) -> None:
    bounded = {"steps": [{"id": "approval", "type": "wait", "timeout": 0.5}]}
    async with _api(api_url, api_headers) as client:
        execution_id = await _start(client, "demo.bounded", bounded)
        execution = await _wait_for(client, execution_id, lambda body: body["status"] != "running")
        late = await client.post(f"/executions/{execution_id}/promises/approval/resolve", json={})
    assert execution["status"] == "failed"
    assert "not settled in time" in execution["error"]["message"]
    assert late.status_code == 409
