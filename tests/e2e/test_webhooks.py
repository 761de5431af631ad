"""Webhooks through the real services: executions' endings reach a local receiver signed, through a failed first
attempt each and a SIGKILL of the scheduler, every one exactly once as a delivery."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import standardwebhooks
from flowline_devstack.processes import ServiceGroup

from tests.support import CountingServer, define, eventually

EXECUTIONS = 20


@pytest.fixture
def receiver() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def test_every_ending_is_delivered_signed_once_through_retries_and_a_killed_scheduler(
    stack: ServiceGroup, api_url: str, api_headers: dict[str, str], receiver: CountingServer
) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=30) as client:
        steps = [{"id": "only", "type": "action", "action": "core.echo", "input": {"n": "{{ input.n }}"}}]
        assert (await define(client, {"ref": "demo.hooked", "definition": {"steps": steps}})).status_code == 201
        # Each delivery's first attempt answers 503: every one is retried with the same webhook-id.
        created = await client.post("/webhooks", json={"url": f"{receiver.url}/flaky/1", "workflows": ["demo.hooked"]})
        assert created.status_code == 201, created.text
        webhook = created.json()
        executions = set()
        for n in range(EXECUTIONS):
            started = await client.post("/workflows/demo.hooked/execute", json={"input": {"n": n}})
            executions.add(started.json()["executionId"])
        stack.kill("scheduler")
        await asyncio.to_thread(stack.restart, "scheduler")

        def delivered() -> dict[str, tuple[dict[str, str], bytes]]:
            return {
                headers["webhook-id"]: (headers, body)
                for _method, path, headers, body in receiver.requests
                if path.startswith("/flaky") and json.loads(body)["type"] == "WORKFLOW_COMPLETED"
            }

        async def all_succeeded() -> bool:
            page = await client.get(f"/webhooks/{webhook['id']}/deliveries", params={"status": "succeeded"})
            return bool(page.json()["total"] == EXECUTIONS)

        await eventually(all_succeeded, timeout=120)
        log = (await client.get(f"/webhooks/{webhook['id']}/deliveries", params={"limit": 100})).json()

    assert log["total"] == EXECUTIONS
    assert all(item["attempts"] >= 2 and item["lastStatusCode"] == 200 for item in log["items"])
    got: dict[str, Any] = delivered()
    assert set(got) == {item["id"] for item in log["items"]}
    verified = [standardwebhooks.Webhook(webhook["secret"]).verify(body, headers) for headers, body in got.values()]
    assert {payload["data"]["executionId"] for payload in verified} == executions
