"""http steps against a real local HTTP server: output, idempotency headers, retry classes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import CountingServer, define


@pytest.fixture
def target() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def _execute(
    api_url: str, api_headers: dict[str, str], ref: str, steps: list[dict[str, Any]], run_input: dict[str, Any]
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=10) as client:
        created = await define(client, {"ref": ref, "definition": {"steps": steps}})
        assert created.status_code == 201, created.text
        execution_id = (await client.post(f"/workflows/{ref}/execute", json={"input": run_input})).json()["executionId"]
        for _ in range(600):
            body: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
            if body["status"] in ("completed", "failed"):
                return body
            await asyncio.sleep(0.05)
    raise AssertionError(f"execution did not finish: {body}")


async def test_an_http_step_sends_its_templated_request(
    api_url: str, api_headers: dict[str, str], target: CountingServer
) -> None:
    step = {
        "id": "call",
        "type": "http",
        "request": {
            "method": "POST",
            "url": target.url + "/ok",
            "headers": {"x-order": "{{ input.order }}"},
            "body": {"order": "{{ input.order }}", "lines": "{{ input.lines }}"},
        },
    }
    execution = await _execute(api_url, api_headers, "demo.call", [step], {"order": "A-1", "lines": [1, 2]})
    assert execution["status"] == "completed", execution
    output = execution["steps"][0]["output"]
    assert output["status"] == 200
    assert json.loads(output["body"]["got"]) == {"order": "A-1", "lines": [1, 2]}
    [(method, path, headers, _)] = target.requests
    assert (method, path) == ("POST", "/ok")
    assert headers["x-order"] == "A-1"
    assert headers["x-flowline-execution-id"] == execution["id"]
    assert headers["x-flowline-step-id"] == "call"
    assert headers["x-flowline-attempt"] == "1"
    assert headers["idempotency-key"].startswith(execution["id"])


async def test_server_errors_are_retried_with_the_same_idempotency_key(
    api_url: str, api_headers: dict[str, str], target: CountingServer
) -> None:
    step = {
        "id": "flaky",
        "type": "http",
        "request": {"url": target.url + "/flaky/2"},
        "retry": {"maxAttempts": 4, "backoff": "fixed", "initialInterval": 0.1, "jitter": False},
    }
    execution = await _execute(api_url, api_headers, "demo.flakyhttp", [step], {})
    assert execution["status"] == "completed", execution
    assert execution["steps"][0]["attempts"] == 3
    keys = {headers["idempotency-key"] for _, _, headers, _ in target.requests}
    assert len(target.requests) == 3 and len(keys) == 1
    assert [headers["x-flowline-attempt"] for _, _, headers, _ in target.requests] == ["1", "2", "3"]


async def test_client_errors_are_not_retried(api_url: str, api_headers: dict[str, str], target: CountingServer) -> None:
    step = {
        "id": "rejected",
        "type": "http",
        "request": {"url": target.url + "/status/404"},
        "retry": {"maxAttempts": 4, "initialInterval": 0.1},
    }
    execution = await _execute(api_url, api_headers, "demo.rejected", [step], {})
    assert execution["status"] == "failed"
    assert "answered 404" in execution["error"]["message"]
    assert len(target.requests) == 1


async def test_an_attempt_past_the_step_timeout_fails(
    api_url: str, api_headers: dict[str, str], target: CountingServer
) -> None:
    step = {"id": "slow", "type": "http", "timeout": 0.3, "request": {"url": target.url + "/slow/3"}}
    execution = await _execute(api_url, api_headers, "demo.slow", [step], {})
    assert execution["status"] == "failed"
    assert "timed out" in execution["error"]["message"]
