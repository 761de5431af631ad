"""Cancel, pause, resume and retry through the api, applied by the engine (the services as real processes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from flowline.settings import Settings

from tests.ports import free_port
from tests.support import CountingServer, define


@pytest.fixture
async def client(api_url: str, api_headers: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=15) as client:
        yield client


@pytest.fixture
def agent_server() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def _start(client: httpx.AsyncClient, ref: str, steps: list[dict[str, Any]]) -> str:
    created = await define(client, {"ref": ref, "definition": {"steps": steps}})
    assert created.status_code == 201, created.text
    started = await client.post(f"/workflows/{ref}/execute", json={"input": {}})
    return str(started.json()["executionId"])


async def _until(client: httpx.AsyncClient, execution_id: str, done: Any) -> dict[str, Any]:
    """The execution once ``done(execution)`` holds (bounded, never a timing assertion)."""
    async with asyncio.timeout(30):
        while True:
            execution: dict[str, Any] = (await client.get(f"/executions/{execution_id}")).json()
            if done(execution):
                return execution
            await asyncio.sleep(0.05)


def _step(execution: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The step's row, or an empty one before the execution has started."""
    return next((step for step in execution["steps"] if step["stepId"] == step_id), {"status": None})


async def _reruns(settings: Settings, execution_id: str) -> int:
    """How many executions rerun ``execution_id``."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM executions WHERE rerun_of = $1::uuid", execution_id
        )
    finally:
        await connection.close()
    return count


async def _audited(settings: Settings, execution_id: str, action: str) -> list[dict[str, Any]]:
    """The changes recorded by the audit rows of ``action`` on the execution."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT changes FROM audit_logs WHERE entity_id = $1 AND action = $2 ORDER BY id",
            execution_id,
            action,
        )
    finally:
        await connection.close()
    return [json.loads(row["changes"]) for row in rows]


async def _events(settings: Settings, execution_id: str) -> list[str]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT event_type FROM execution_events WHERE execution_id = $1::uuid ORDER BY sequence", execution_id
        )
    finally:
        await connection.close()
    return [row["event_type"] for row in rows]


async def test_cancelling_a_sleeping_execution_cancels_its_timer(
    api_url: str, api_headers: dict[str, str], client: httpx.AsyncClient, settings: Settings
) -> None:
    execution_id = await _start(client, "demo.nap", [{"id": "nap", "type": "sleep", "duration": "1h"}])
    await _until(client, execution_id, lambda e: _step(e, "nap")["status"] == "running")

    cancelled = await client.post(f"/executions/{execution_id}/cancel", json={"reason": "not needed"})

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelledAt"] is not None
    execution = (await client.get(f"/executions/{execution_id}")).json()
    assert execution["error"]["message"] == "not needed"
    assert _step(execution, "nap")["status"] == "cancelled"
    assert "TIMER_CANCELLED" in await _events(settings, execution_id)
    again = await client.post(f"/executions/{execution_id}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


@pytest.mark.parametrize("kind", ["http", "agent"])
async def test_cancelling_aborts_a_call_in_flight(
    kind: str, client: httpx.AsyncClient, agent_server: CountingServer, settings: Settings
) -> None:
    if kind == "agent":
        agent = {"name": "slowpoke", "url": agent_server.url + "/slow/60", "timeoutMs": 120_000}
        assert (await client.post("/agents", json=agent)).status_code == 201
        step: dict[str, Any] = {"id": "call", "type": "agent", "agent": "slowpoke"}
    else:
        step = {"id": "call", "type": "http", "request": {"url": agent_server.url + "/slow/60"}, "timeout": 120}
    execution_id = await _start(client, "demo.slow", [step])
    async with asyncio.timeout(30):
        while not agent_server.requests:
            await asyncio.sleep(0.05)

    cancelled = await client.post(f"/executions/{execution_id}/cancel")

    assert cancelled.json()["status"] == "cancelled"
    execution = (await client.get(f"/executions/{execution_id}")).json()
    assert _step(execution, "call")["status"] == "cancelled"
    assert _step(execution, "call")["completedAt"] is not None
    attempts = (
        await client.get(f"/executions/{execution_id}/tasks/{_step(execution, 'call')['taskId']}/attempts")
    ).json()
    assert [attempt["status"] for attempt in attempts["attempts"]] == ["cancelled"]
    assert len(agent_server.requests) == 1  # the aborted call is not made again
    assert (await _events(settings, execution_id))[-2:] == ["TASK_CANCELLED", "WORKFLOW_CANCELLED"]


async def test_cancelling_a_waiting_execution_rejects_its_promise(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    execution_id = await _start(client, "demo.approval", [{"id": "approve", "type": "wait", "promise": "ok"}])
    await _until(client, execution_id, lambda e: _step(e, "approve")["status"] == "running")

    assert (await client.post(f"/executions/{execution_id}/cancel")).json()["status"] == "cancelled"

    late = await client.post(f"/executions/{execution_id}/promises/ok/resolve", json={"value": True})
    assert late.status_code == 409, late.text
    events = await _events(settings, execution_id)
    assert "PROMISE_REJECTED" in events and events[-1] == "WORKFLOW_CANCELLED"


async def test_cancelling_a_parent_cancels_its_running_child(client: httpx.AsyncClient) -> None:
    child = {"ref": "demo.napper", "definition": {"steps": [{"id": "nap", "type": "sleep", "duration": "1h"}]}}
    assert (await define(client, child)).status_code == 201
    parent_id = await _start(client, "demo.parent", [{"id": "call", "type": "workflow", "workflow": "demo.napper"}])

    async def child_running() -> str | None:
        children = (await client.get(f"/executions/{parent_id}/children")).json()["children"]
        return children[0]["childWorkflowExecutionId"] if children and children[0]["status"] == "running" else None

    async with asyncio.timeout(30):
        while (child_id := await child_running()) is None:
            await asyncio.sleep(0.05)

    assert (await client.post(f"/executions/{parent_id}/cancel")).json()["status"] == "cancelled"

    cancelled_child = await _until(client, child_id, lambda e: e["status"] != "running")
    assert cancelled_child["status"] == "cancelled"
    assert cancelled_child["cancelledBy"] == "parent"
    assert _step(cancelled_child, "nap")["status"] == "cancelled"


async def test_pausing_lets_parallel_calls_in_flight_finish_and_starts_nothing_after_them(
    client: httpx.AsyncClient, agent_server: CountingServer, settings: Settings
) -> None:
    steps = [
        {"id": "left", "type": "http", "request": {"url": agent_server.url + "/slow/1"}},
        {"id": "right", "type": "http", "request": {"url": agent_server.url + "/slow/1"}},
        {"id": "after", "type": "action", "action": "core.noop", "needs": ["left", "right"]},
    ]
    execution_id = await _start(client, "demo.branches", steps)
    async with asyncio.timeout(30):
        while len(agent_server.requests) < 2:
            await asyncio.sleep(0.02)

    assert (await client.post(f"/executions/{execution_id}/pause")).json()["status"] == "paused"

    both_done = await _until(
        client, execution_id, lambda e: {_step(e, "left")["status"], _step(e, "right")["status"]} == {"completed"}
    )
    assert both_done["status"] == "paused"
    assert _step(both_done, "after")["status"] == "pending"
    assert (await client.post(f"/executions/{execution_id}/resume")).status_code == 200
    finished = await _until(client, execution_id, lambda e: e["status"] in ("completed", "failed"))
    assert finished["status"] == "completed"
    assert _step(finished, "after")["startedAt"] > _step(finished, "left")["completedAt"]
    events = await _events(settings, execution_id)
    assert events.index("WORKFLOW_SUSPENDED") < events.index("WORKFLOW_RESUMED") < events.index("WORKFLOW_COMPLETED")


async def test_a_paused_execution_records_results_but_starts_nothing_until_resumed(
    api_url: str, api_headers: dict[str, str], client: httpx.AsyncClient, settings: Settings
) -> None:
    steps = [
        {"id": "gate", "type": "wait", "promise": "go"},
        {"id": "left", "type": "action", "action": "core.echo", "needs": ["gate"], "input": "l"},
        {"id": "right", "type": "action", "action": "core.echo", "needs": ["gate"], "input": "r"},
        {"id": "join", "type": "action", "action": "core.noop", "needs": ["left", "right"]},
    ]
    execution_id = await _start(client, "demo.gated", steps)
    await _until(client, execution_id, lambda e: _step(e, "gate")["status"] == "running")

    paused = await client.post(f"/executions/{execution_id}/pause")
    assert paused.json() == {"executionId": execution_id, "status": "paused"}
    assert (await client.post(f"/executions/{execution_id}/pause")).status_code == 409
    assert (await client.post(f"/executions/{execution_id}/promises/go/resolve", json={"value": 1})).status_code == 200
    execution = await _until(client, execution_id, lambda e: _step(e, "gate")["status"] == "completed")
    assert execution["status"] == "paused"
    assert {_step(execution, "left")["status"], _step(execution, "right")["status"]} == {"pending"}

    resumed = await client.post(f"/executions/{execution_id}/resume")

    assert resumed.json() == {"executionId": execution_id, "status": "running"}
    execution = await _until(client, execution_id, lambda e: e["status"] in ("completed", "failed"))
    assert execution["status"] == "completed"
    assert (await client.post(f"/executions/{execution_id}/resume")).status_code == 409
    events = await _events(settings, execution_id)
    assert events.index("WORKFLOW_SUSPENDED") < events.index("PROMISE_RESOLVED") < events.index("WORKFLOW_RESUMED")


async def test_a_retry_resumes_from_the_failed_step_only(
    api_url: str,
    api_headers: dict[str, str],
    client: httpx.AsyncClient,
    agent_server: CountingServer,
    settings: Settings,
) -> None:
    later_port = free_port()  # nothing listens here yet: the second call fails until a server starts
    steps = [
        {"id": "first", "type": "http", "request": {"method": "POST", "url": agent_server.url + "/ok"}},
        {"id": "second", "type": "http", "needs": ["first"], "request": {"url": f"http://127.0.0.1:{later_port}/ok"}},
    ]
    execution_id = await _start(client, "demo.flaky", steps)
    failed = await _until(client, execution_id, lambda e: e["status"] in ("completed", "failed"))
    assert failed["status"] == "failed"
    assert (await client.post(f"/executions/{execution_id}/resume")).status_code == 409

    later = CountingServer(later_port)
    try:
        retried = await client.post(f"/executions/{execution_id}/retry", json={"note": "the service is back"})

        assert retried.status_code == 200, retried.text
        assert retried.json() == {
            "workflowExecutionId": execution_id,
            "status": "pending",
            "message": f"Execution {execution_id} reset for retry. Status: PENDING",
            "success": True,
        }
        execution = await _until(client, execution_id, lambda e: e["status"] in ("completed", "failed"))
    finally:
        later.close()
    assert execution["status"] == "completed", execution
    assert execution["error"] is None
    assert len(agent_server.requests) == 1  # the completed step was not called again
    assert len(later.requests) == 1
    assert (await client.post(f"/executions/{execution_id}/retry")).status_code == 409
    events = await _events(settings, execution_id)
    assert events.count("WORKFLOW_FAILED") == 1
    assert events[events.index("WORKFLOW_FAILED") + 1] == "RETRY_REQUESTED"


async def test_a_rerun_runs_again_from_a_step_and_reuses_the_outputs_before_it(
    api_url: str,
    api_headers: dict[str, str],
    client: httpx.AsyncClient,
    agent_server: CountingServer,
    settings: Settings,
) -> None:
    steps = [
        {"id": "fetch", "type": "http", "request": {"method": "POST", "url": agent_server.url + "/ok"}},
        {"id": "shape", "type": "action", "action": "core.echo", "needs": ["fetch"], "input": "{{ input.n }}"},
        {"id": "report", "type": "action", "action": "core.echo", "needs": ["shape"], "input": "{{ input.n }}"},
    ]
    first_id = await _start(client, "demo.report", steps)
    first = await _until(client, first_id, lambda e: e["status"] in ("completed", "failed"))
    assert first["status"] == "failed"  # input.n is missing the first time

    preview = await client.post(
        f"/executions/{first_id}/rerun", json={"fromStep": "shape", "input": {"n": 7}, "dryRun": True}
    )
    assert preview.status_code == 200, preview.text
    assert preview.json() == {"executionId": first_id, "dryRun": True, "steps": ["shape", "report"], "kept": ["fetch"]}
    assert await _reruns(settings, first_id) == 0  # the preview started nothing

    rerun = await client.post(f"/executions/{first_id}/rerun", json={"fromStep": "shape", "input": {"n": 7}})

    assert rerun.status_code == 202, rerun.text
    assert rerun.json()["rerunOf"] == first_id
    second_id = rerun.json()["executionId"]
    second = await _until(client, second_id, lambda e: e["status"] in ("completed", "failed"))
    assert second["status"] == "completed", second
    assert second["rerunOf"] == first_id
    assert _step(second, "fetch")["output"] == _step(first, "fetch")["output"]
    assert _step(second, "report")["output"] == 7
    assert len(agent_server.requests) == 1  # fetch's output was reused, not fetched again
    assert "TASK_COMPLETED" in await _events(settings, second_id)
    unknown = await client.post(f"/executions/{first_id}/rerun", json={"fromStep": "nope"})
    assert unknown.status_code == 404
    assert "no step 'nope'" in unknown.json()["detail"]
    extra = {"id": "prepare", "type": "action", "action": "core.noop"}
    updated = await client.put("/workflows/demo.report", json={"definition": {"steps": [extra, *steps]}})
    assert updated.json()["version"] == 2, updated.text
    incompatible = await client.post(f"/executions/{first_id}/rerun", json={"fromStep": "shape", "version": 2})
    assert incompatible.status_code == 409
    assert incompatible.json()["detail"].endswith("never ran: prepare")


async def test_a_retried_wait_step_waits_on_its_promise_again(
    api_url: str, api_headers: dict[str, str], client: httpx.AsyncClient
) -> None:
    execution_id = await _start(client, "demo.approval", [{"id": "approve", "type": "wait", "promise": "ok"}])
    await _until(client, execution_id, lambda e: _step(e, "approve")["status"] == "running")
    await client.post(f"/executions/{execution_id}/promises/ok/reject", json={"reason": "not yet"})
    await _until(client, execution_id, lambda e: e["status"] == "failed")

    assert (await client.post(f"/executions/{execution_id}/retry")).status_code == 200
    await _until(client, execution_id, lambda e: _step(e, "approve")["status"] == "running")
    resolved = await client.post(f"/executions/{execution_id}/promises/ok/resolve", json={"value": "yes"})

    assert resolved.status_code == 200, resolved.text
    execution = await _until(client, execution_id, lambda e: e["status"] in ("completed", "failed"))
    assert execution["status"] == "completed"
    assert _step(execution, "approve")["output"] == "yes"


async def _attempts(client: httpx.AsyncClient, execution: dict[str, Any], step_id: str) -> list[dict[str, Any]]:
    task_id = _step(execution, step_id)["taskId"]
    attempts: list[dict[str, Any]] = (
        await client.get(f"/executions/{execution['id']}/tasks/{task_id}/attempts")
    ).json()["attempts"]
    return attempts


async def test_a_flaky_steps_attempts_keep_their_own_input_output_and_error(
    api_url: str, api_headers: dict[str, str], client: httpx.AsyncClient, agent_server: CountingServer
) -> None:
    steps = [
        {
            "id": "call",
            "type": "http",
            "request": {"method": "POST", "url": agent_server.url + "/flaky/1", "body": {"n": "{{ input.n }}"}},
            "retry": {"maxAttempts": 2, "backoff": "fixed", "initialInterval": 0.1, "jitter": False},
        },
        {"id": "note", "type": "action", "action": "core.echo", "needs": ["call"], "input": "{{ input.n }}"},
    ]
    created = await define(client, {"ref": "demo.flakycall", "definition": {"steps": steps}})
    assert created.status_code == 201, created.text
    started = await client.post("/workflows/demo.flakycall/execute", json={"input": {"n": 5}})
    execution = await _until(client, started.json()["executionId"], lambda e: e["status"] in ("completed", "failed"))
    assert execution["status"] == "completed", execution

    first, second = await _attempts(client, execution, "call")
    note = await _attempts(client, execution, "note")

    assert (first["attempt"], first["status"], first["output"]) == (1, "failed", None)
    assert first["input"]["body"] == second["input"]["body"] == {"n": 5}
    assert "503" in first["error"]["message"]
    assert (second["attempt"], second["status"], second["error"]) == (2, "completed", None)
    assert second["output"] == _step(execution, "call")["output"]
    assert json.loads(second["output"]["body"]["got"]) == {"n": 5}
    assert [(a["input"], a["output"]) for a in note] == [(5, 5)]  # an instant action's attempt, kept too


async def test_a_retry_with_edited_input_is_previewed_checked_and_runs_the_failed_steps_with_it(
    api_url: str,
    api_headers: dict[str, str],
    client: httpx.AsyncClient,
    agent_server: CountingServer,
    settings: Settings,
) -> None:
    steps = [
        {"id": "first", "type": "http", "request": {"method": "POST", "url": agent_server.url + "/ok"}},
        {
            "id": "check",
            "type": "http",
            "needs": ["first"],
            "request": {"url": agent_server.url + "/status/{{ input.code }}"},
        },
        {"id": "after", "type": "action", "action": "core.echo", "needs": ["check"], "input": "{{ input.code }}"},
    ]
    schema = {"type": "object", "properties": {"code": {"type": "integer"}}, "required": ["code"]}
    created = await define(client, {"ref": "demo.checked", "inputSchema": schema, "definition": {"steps": steps}})
    assert created.status_code == 201, created.text
    started = await client.post("/workflows/demo.checked/execute", json={"input": {"code": 404}})
    execution_id = started.json()["executionId"]
    failed = await _until(client, execution_id, lambda e: e["status"] in ("completed", "failed"))
    assert failed["status"] == "failed"

    preview = await client.post(f"/executions/{execution_id}/retry", json={"input": {"code": 200}, "dryRun": True})
    refused = await client.post(f"/executions/{execution_id}/retry", json={"input": {"code": "ten"}})
    refused_preview = await client.post(f"/executions/{execution_id}/retry", json={"input": {}, "dryRun": True})
    unchanged = (await client.get(f"/executions/{execution_id}")).json()

    assert preview.status_code == 200, preview.text
    assert preview.json() == {
        "executionId": execution_id,
        "dryRun": True,
        "steps": ["check", "after"],
        "kept": ["first"],
    }
    assert refused.status_code == 422 and refused.json()["pointer"] == "/input/code"
    assert refused_preview.status_code == 422 and "code" in refused_preview.json()["detail"]
    assert (unchanged["status"], unchanged["input"]) == ("failed", {"code": 404})
    assert "RETRY_REQUESTED" not in await _events(settings, execution_id)

    retried = await client.post(f"/executions/{execution_id}/retry", json={"input": {"code": 200}, "note": "fixed"})

    assert retried.status_code == 200, retried.text
    execution = await _until(client, execution_id, lambda e: e["status"] in ("completed", "failed"))
    assert execution["status"] == "completed", execution
    assert execution["input"] == {"code": 200}
    assert _step(execution, "after")["output"] == 200
    assert [path for _, path, _, _ in agent_server.requests] == ["/ok", "/status/404", "/status/200"]
    old, new = await _attempts(client, execution, "check")
    assert (old["generation"], old["status"], old["input"]["url"]) == (0, "failed", agent_server.url + "/status/404")
    assert "404" in old["error"]["message"] and old["output"] is None
    assert (new["generation"], new["status"], new["input"]["url"]) == (1, "completed", agent_server.url + "/status/200")
    assert new["output"]["status"] == 200
    assert await _audited(settings, execution_id, "retry") == [
        {"note": {"before": None, "after": "fixed"}, "input": {"before": None, "after": {"code": 200}}}
    ]
