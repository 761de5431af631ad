"""agent steps against a real local HTTP server: auth, idempotency headers, the agent's retry policy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import CountingServer, define


@pytest.fixture
def agent_server() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def _run(
    api_url: str, api_headers: dict[str, str], agent: dict[str, Any], step: dict[str, Any]
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        created = await client.post("/agents", json=agent)
        assert created.status_code == 201, created.text
        ref = f"demo.{agent['name']}"
        workflow = await define(client, {"ref": ref, "definition": {"steps": [step]}})
        assert workflow.status_code == 201, workflow.text
        started = await client.post(f"/workflows/{ref}/execute", json={"input": {"order": "A-1"}})
        execution_id = started.json()["executionId"]
        for _ in range(600):
            body: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
            if body["status"] in ("completed", "failed"):
                return body
            await asyncio.sleep(0.05)
    raise AssertionError(f"execution did not finish: {body}")


async def test_an_agent_step_retries_with_the_agents_policy_and_one_idempotency_key(
    api_url: str, api_headers: dict[str, str], agent_server: CountingServer
) -> None:
    agent = {
        "name": "fulfilment",
        "url": agent_server.url + "/flaky/2",
        "authType": "bearer",
        "authConfig": {"token": "s3cret-token"},
        "retryConfig": {"maxAttempts": 3, "backoff": "fixed", "initialIntervalMs": 10, "maxIntervalMs": 10},
    }
    step = {"id": "fulfil", "type": "agent", "agent": "fulfilment", "input": {"order": "{{ input.order }}"}}

    execution = await _run(api_url, api_headers, agent, step)

    assert execution["status"] == "completed", execution
    [fulfil] = execution["steps"]
    assert fulfil["attempts"] == 3
    assert fulfil["output"] == {"path": "/flaky/2", "got": json.dumps({"order": "A-1"}, separators=(",", ":"))}
    assert [headers["x-flowline-attempt"] for _, _, headers, _ in agent_server.requests] == ["1", "2", "3"]
    assert {headers["authorization"] for _, _, headers, _ in agent_server.requests} == {"Bearer s3cret-token"}
    keys = {headers["idempotency-key"] for _, _, headers, _ in agent_server.requests}
    assert len(keys) == 1
    assert {headers["x-flowline-execution-id"] for _, _, headers, _ in agent_server.requests} == {execution["id"]}


async def test_an_agent_that_refuses_the_request_fails_the_step_at_once(
    api_url: str, api_headers: dict[str, str], agent_server: CountingServer
) -> None:
    agent = {
        "name": "strict",
        "url": agent_server.url + "/status/422",
        "retryConfig": {"maxAttempts": 5, "backoff": "fixed", "initialIntervalMs": 10, "maxIntervalMs": 10},
    }
    step = {"id": "check", "type": "agent", "agent": "strict", "input": {}}

    execution = await _run(api_url, api_headers, agent, step)

    assert execution["status"] == "failed", execution
    [check] = execution["steps"]
    assert check["attempts"] == 1
    assert "answered 422" in check["error"]["message"]
    assert check["error"]["retryable"] is False
    assert len(agent_server.requests) == 1
