"""Live streams (SSE) against the four services as processes: order, children, resume, keep-alive, the end."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from flowline.settings import Settings
from flowline_devstack.processes import ServiceGroup

from tests.stacks import Servers, fresh_database, services_env, stack_settings_env
from tests.support import define

Item = dict[str, Any]

CHILD = {
    "ref": "demo.kid",
    "definition": {"steps": [{"id": "shout", "type": "action", "action": "core.transform", "input": "{{ input.w }}"}]},
}
BUSY = {
    "ref": "demo.busy",
    "definition": {
        "steps": [
            {"id": "start", "type": "action", "action": "core.noop"},
            {"id": "left", "type": "action", "action": "core.echo", "needs": ["start"], "input": "l"},
            {"id": "right", "type": "action", "action": "core.echo", "needs": ["start"], "input": "r"},
            {"id": "nap", "type": "sleep", "duration": "300ms", "needs": ["left", "right"]},
            {"id": "approval", "type": "wait", "promise": "go", "needs": ["nap"]},
            {"id": "call", "type": "workflow", "workflow": "demo.kid", "needs": ["approval"], "input": {"w": "hi"}},
        ]
    },
}
TALKER = {
    "ref": "demo.talker",
    "definition": {
        "steps": [
            {"id": "approval", "type": "wait", "promise": "go"},
            {
                "id": "talk",
                "type": "action",
                "action": "core.log",
                "needs": ["approval"],
                "input": {"message": "hello from the task", "level": "WARN"},
            },
        ]
    },
}


@pytest.fixture(scope="module")
async def database_url(servers: Servers, template_database: str) -> AsyncIterator[str]:
    """A database of this module's own: the package's stack keeps running beside this one.

    Over one database, either stack's scheduler fires the other's timers and either executor applies
    them, publishing the events on its own stack's topics: a stream here would miss them.
    """
    async with fresh_database(servers, template_database) as url:
        yield url


@pytest.fixture(scope="module")
def settings_env(servers: Servers, database_url: str) -> dict[str, str]:
    return stack_settings_env(servers, database_url)


@pytest.fixture(scope="module")
def stack_env(settings_env: dict[str, str]) -> dict[str, str]:
    """A stack of this module's own, with keep-alive comments every 0.3 s, so a test sees them soon."""
    return {**services_env(settings_env), "FLOWLINE_STREAM_KEEPALIVE_SECONDS": "0.3"}


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    with ServiceGroup(stack_env, log_dir=tmp_path_factory.mktemp("streams-stack")) as group:
        yield group


def _api(api_url: str, api_headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api_url, headers=api_headers, timeout=httpx.Timeout(10, read=60))


async def read_sse(
    client: httpx.AsyncClient,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    on_item: Callable[[Item, list[Item]], Any] | None = None,
    stop: Callable[[list[Item]], bool] | None = None,
    timeout: float = 60.0,
) -> list[Item]:
    """Every event and comment of a stream until the server closes it (or ``stop`` says enough)."""
    items: list[Item] = []
    async with asyncio.timeout(timeout), client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        current: Item = {}
        async for line in response.aiter_lines():
            if line == "":
                if current:
                    items.append(current)
                    if on_item is not None:
                        result = on_item(current, items)
                        if asyncio.iscoroutine(result):
                            await result
                    current = {}
                    if stop is not None and stop(items):
                        break
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "":
                current["comment"] = value
            elif field == "data":
                current["data"] = json.loads(value)
            elif field == "id":
                current["id"] = value
    return items


def events(items: list[Item]) -> list[Item]:
    return [item["data"] for item in items if "data" in item and item["data"]["type"] == "Event"]


async def _start(client: httpx.AsyncClient, *workflows: dict[str, Any]) -> str:
    for workflow in workflows:
        assert (await define(client, workflow)).status_code == 201
    accepted = await client.post(f"/workflows/{workflows[-1]['ref']}/execute", json={})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["executionId"])


async def _event_log(settings: Settings, execution_id: str) -> list[str]:
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT event_type FROM execution_events WHERE execution_id = $1 ORDER BY sequence",
            uuid.UUID(execution_id),
        )
    finally:
        await connection.close()
    return [row["event_type"] for row in rows]


def _resolve_on_promise(client: httpx.AsyncClient, execution_id: str) -> Callable[[Item, list[Item]], Any]:
    async def on_item(item: Item, items: list[Item]) -> None:
        if item.get("data", {}).get("event") == "PROMISE_CREATED" and item["data"]["executionId"] == execution_id:
            resolved = await client.post(f"/executions/{execution_id}/promises/go/resolve", json={"value": 1})
            assert resolved.status_code == 200, resolved.text

    return on_item


async def test_streams_show_every_event_in_order_and_close_at_the_end(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    async with _api(api_url, api_headers) as client:
        execution_id = await _start(client, CHILD, BUSY)
        single, consolidated = await asyncio.gather(
            read_sse(client, f"/executions/{execution_id}/stream", on_item=_resolve_on_promise(client, execution_id)),
            read_sse(client, f"/executions/{execution_id}/stream/consolidated"),
        )

    # The execution stream: its whole event log, in order, ids = sequences, closed after the final event.
    sent = events(single)
    assert [event["sequence"] for event in sent] == list(range(1, len(sent) + 1))
    assert [item["id"] for item in single if "data" in item] == [str(event["sequence"]) for event in sent]
    names = [event["event"] for event in sent]
    assert names == await _event_log(settings, execution_id)
    assert names[0] == "WORKFLOW_CREATED" and names[-1] == "WORKFLOW_COMPLETED"
    for expected in ("TIMER_STARTED", "TIMER_FIRED", "PROMISE_CREATED", "PROMISE_RESOLVED"):
        assert expected in names
    assert names.index("CHILD_WORKFLOW_INITIATED") < names.index("CHILD_WORKFLOW_COMPLETED")
    by_step: dict[str, list[str]] = {}
    for event in sent:
        if event["stepId"]:
            by_step.setdefault(event["stepId"], []).append(event["event"])
    for step in ("left", "right"):  # the parallel steps, each in its own order
        assert by_step[step] == ["TASK_CREATED", "TASK_STARTED", "TASK_COMPLETED"], by_step
    assert set(sent[0]) >= {"type", "event", "data", "timestampMs", "executionId", "sequence"}
    assert sent[-1]["data"]["status"] == "completed"

    # The consolidated stream: the same events plus the child's, each execution's in order.
    everything = events(consolidated)
    child_id = next(event for event in sent if event["event"] == "CHILD_WORKFLOW_INITIATED")["data"]["childExecutionId"]
    assert {event["executionId"] for event in everything} == {execution_id, child_id}
    for owner in (execution_id, child_id):
        mine = [event for event in everything if event["executionId"] == owner]
        assert [event["sequence"] for event in mine] == list(range(1, len(mine) + 1))
        assert [event["event"] for event in mine] == await _event_log(settings, owner)
    assert everything[-1]["event"] == "WORKFLOW_COMPLETED" and everything[-1]["executionId"] == execution_id
    last_id = [item["id"] for item in consolidated if "id" in item][-1]
    positions = dict(part.split(":") for part in last_id.split(","))
    assert positions[execution_id] == str(len(sent))
    assert int(positions[child_id]) == len([event for event in everything if event["executionId"] == child_id])


async def test_resuming_with_last_event_id_has_no_gap_and_no_repeat(
    api_url: str, api_headers: dict[str, str], settings: Settings
) -> None:
    async with _api(api_url, api_headers) as client:
        execution_id = await _start(client, CHILD, BUSY)
        path = f"/executions/{execution_id}/stream"

        def promised(items: list[Item]) -> bool:
            return any(event["event"] == "PROMISE_CREATED" for event in events(items))

        first = await read_sse(client, path, stop=promised)
        first_consolidated = await read_sse(client, f"{path}/consolidated", stop=promised)
        # Go on while the execution moves: the rest of it happens during and after the replay.
        resolved = await client.post(f"/executions/{execution_id}/promises/go/resolve", json={})
        assert resolved.status_code == 200
        cut = events(first)[len(events(first)) // 2]["sequence"]
        rest, rest_by_query, rest_consolidated = await asyncio.gather(
            read_sse(client, path, headers={"Last-Event-ID": str(cut)}),
            read_sse(client, f"{path}?lastEventId={cut}"),
            read_sse(client, f"{path}/consolidated", headers={"Last-Event-ID": first_consolidated[-1]["id"]}),
        )
        finished = await client.get(path, headers={"Last-Event-ID": rest[-1]["id"]})
        bad = await client.get(path, headers={"Last-Event-ID": "seven"})
        missing = await client.get(f"/executions/{uuid.uuid4()}/stream")

    log = await _event_log(settings, execution_id)
    resumed = events(rest)
    assert [event["sequence"] for event in resumed] == list(range(cut + 1, len(log) + 1))
    assert [event["event"] for event in resumed] == log[cut:]
    assert events(rest_by_query) == resumed

    # Consolidated: what the first connection got and what the second got make every event exactly once.
    both = events(first_consolidated) + events(rest_consolidated)
    seen = [(event["executionId"], event["sequence"]) for event in both]
    assert len(seen) == len(set(seen))
    for owner in {event["executionId"] for event in both}:
        mine = sorted(sequence for who, sequence in seen if who == owner)
        assert mine == list(range(1, len(await _event_log(settings, owner)) + 1))

    assert finished.status_code == 204  # resumed after the final event: nothing more, EventSource stops
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]
    assert missing.status_code == 404


async def test_a_quiet_stream_gets_keep_alive_comments(api_url: str, api_headers: dict[str, str]) -> None:
    async with _api(api_url, api_headers) as client:
        execution_id = await _start(client, TALKER)
        comments_after_promise = 0

        async def on_item(item: Item, items: list[Item]) -> None:
            nonlocal comments_after_promise
            if not any(event["event"] == "PROMISE_CREATED" for event in events(items)):
                return
            if "comment" in item and "data" not in item:
                comments_after_promise += 1
                if comments_after_promise == 2:  # quiet for a while and still open: let it finish
                    await client.post(f"/executions/{execution_id}/promises/go/resolve", json={})

        items = await read_sse(client, f"/executions/{execution_id}/stream", on_item=on_item)
    assert comments_after_promise >= 2
    assert next(item["comment"] for item in items if "comment" in item) == "keep-alive"
    assert events(items)[-1]["event"] == "WORKFLOW_COMPLETED"


async def test_a_task_stream_tails_the_task_s_log_lines_live(api_url: str, api_headers: dict[str, str]) -> None:
    async with _api(api_url, api_headers) as client:
        execution_id = await _start(client, TALKER)
        task_id = None
        async with asyncio.timeout(30):
            while task_id is None:
                body = (await client.get(f"/executions/{execution_id}")).json()
                task_id = next((step["taskId"] for step in body.get("steps", []) if step["stepId"] == "talk"), None)
                await asyncio.sleep(0.05)
        opened = asyncio.Event()

        async def on_item(item: Item, items: list[Item]) -> None:
            opened.set()

        async def resolve_once_open() -> None:
            # The stream is live before the step runs: wait for its first keep-alive, then let the step go.
            await opened.wait()
            await client.post(f"/executions/{execution_id}/promises/go/resolve", json={})

        items, _ = await asyncio.gather(
            read_sse(client, f"/tasks/{task_id}/stream", on_item=on_item), resolve_once_open()
        )
        missing = await client.get(f"/tasks/{uuid.uuid4()}/stream")

    sent = [item["data"] for item in items if "data" in item]
    state = [data for data in sent if data["type"] == "Event"]
    assert {event["taskId"] for event in state} == {task_id}
    assert [event["event"] for event in state] == ["TASK_CREATED", "TASK_STARTED", "TASK_COMPLETED"]
    logs = [data for data in sent if data["type"] == "Log"]
    said = [log for log in logs if log["message"] == "hello from the task"]
    assert len(said) == 1 and said[0]["level"] == "WARN" and said[0]["stepId"] == "talk"
    assert said[0]["attempt"] == 1 and said[0]["taskId"] == task_id
    assert len({log["id"] for log in logs}) == len(logs)
    assert all("id" not in item for item in items if item.get("data", {}).get("type") == "Log")
    assert missing.status_code == 404
