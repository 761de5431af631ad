"""Start an execution with POST /executions and read it back: steps, events, attempts, children, task, list."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support import define

CHILD = {"ref": "demo.child", "definition": {"steps": [{"id": "echo", "type": "action", "action": "core.echo"}]}}
PARENT = {
    "ref": "demo.parent",
    "definition": {
        "steps": [
            {"id": "ship", "type": "workflow", "workflow": "demo.child", "input": {"order": "{{ input.order }}"}},
            {
                "id": "charge",
                "type": "action",
                "action": "core.fail",
                "needs": ["ship"],
                "input": {"message": "card declined", "retryable": True},
                "retry": {"maxAttempts": 2, "backoff": "fixed", "initialInterval": 0.1},
            },
        ]
    },
}


async def _finished(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"execution {execution_id} did not finish: {body}")


async def test_an_execution_started_through_post_executions_reads_back(
    api_url: str, api_headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        for workflow in (CHILD, PARENT):
            assert (await define(client, workflow)).status_code == 201
        started = await client.post(
            "/executions",
            json={"workflow": "demo.parent", "input": {"order": 7}, "metadata": {"customer": "c-7"}, "tags": ["e2e"]},
        )
        assert started.status_code == 202, started.text
        execution_id = started.json()["executionId"]

        execution = await _finished(client, execution_id)
        steps = (await client.get(f"/executions/{execution_id}/steps")).json()["steps"]
        events = (await client.get(f"/executions/{execution_id}/events", params={"limit": 1000})).json()
        children = (await client.get(f"/executions/{execution_id}/children")).json()["children"]
        charge = next(step for step in steps if step["stepId"] == "charge")
        attempts = (await client.get(f"/executions/{execution_id}/tasks/{charge['taskId']}/attempts")).json()
        task = (await client.get(f"/tasks/{charge['taskId']}")).json()
        listed = (
            await client.get("/executions", params={"metadata.customer": "c-7", "status": "failed", "tag": "e2e"})
        ).json()
        child_listed = (await client.get("/executions", params={"parentId": execution_id})).json()

    assert execution["status"] == "failed"
    assert execution["stepCounts"]["completed"] == 1 and execution["stepCounts"]["failed"] == 1
    assert execution["durationMs"] is not None
    assert [(step["stepId"], step["status"], step["attempts"]) for step in steps] == [
        ("ship", "completed", 1),
        ("charge", "failed", 2),
    ]
    names = [event["event"] for event in events["events"]]
    assert names[0] == "WORKFLOW_CREATED" and names[-1] == "WORKFLOW_FAILED"
    assert "CHILD_WORKFLOW_COMPLETED" in names
    assert [event["sequence"] for event in events["events"]] == list(range(1, len(names) + 1))
    assert events["hasMore"] is False
    assert [(child["kind"], child["status"]) for child in children] == [("demo.child", "completed")]
    assert [(a["attempt"], a["status"]) for a in attempts["attempts"]] == [(1, "failed"), (2, "failed")]
    assert all(a["workerId"] and a["durationMs"] is not None for a in attempts["attempts"])
    assert attempts["attempts"][0]["error"]["message"] == "card declined"
    assert (task["executionId"], task["workflowRef"], task["status"]) == (execution_id, "demo.parent", "failed")
    assert [item["id"] for item in listed["items"]] == [execution_id]
    assert [item["id"] for item in child_listed["items"]] == [children[0]["childWorkflowExecutionId"]]
    assert child_listed["items"][0]["triggeredBy"] == "workflow"
