"""Live streams are bounded: per principal (429) and per api process (503), and in what each buffers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import httpx
import msgspec
from flowline.db.events import NewEvent, append_events
from flowline.domain.snapshots import WorkflowSnapshot
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_api.domain.streams.hub import StreamHub
from flowline_api.domain.streams.service import StreamSession, StreamTimings

from tests.integration.api.clients import served_api
from tests.support import api_key, bearer, define_and_start, eventually

ONE_STEP = {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}


async def _assert_refused(response: httpx.Response, status: int, setting: str) -> None:
    await response.aread()
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "5"
    assert setting in response.json()["detail"]


async def test_open_streams_are_capped_per_principal_with_429_and_per_process_with_503(
    settings: Settings, runtime: Runtime
) -> None:
    started = await define_and_start(runtime.pool, settings, "demo.watched", ONE_STEP, {})  # stays pending
    capped = msgspec.structs.replace(settings, stream_max_per_principal=2, stream_max_per_process=3)
    async with (
        served_api(capped) as (url, first_key),
        httpx.AsyncClient(base_url=f"{url}/api/v1/tenants/dev/", timeout=60) as client,
        contextlib.AsyncExitStack() as streams,
    ):
        second_key = await api_key(settings.database_url)
        third_key = await api_key(settings.database_url)
        path = f"executions/{started.id}/stream"

        async def open_stream(key: str, on: contextlib.AsyncExitStack = streams) -> httpx.Response:
            return await on.enter_async_context(client.stream("GET", path, headers=bearer(key)))

        first_principal = contextlib.AsyncExitStack()
        assert (await open_stream(first_key, first_principal)).status_code == 200
        assert (await open_stream(first_key)).status_code == 200
        refused = await open_stream(first_key)
        await _assert_refused(refused, 429, "FLOWLINE_STREAM_MAX_PER_PRINCIPAL")

        # Another principal has its own count, until the process has no room left.
        assert (await open_stream(second_key)).status_code == 200
        await _assert_refused(await open_stream(third_key), 503, "FLOWLINE_STREAM_MAX_PER_PROCESS")

        # A stream that closes makes room again.
        await first_principal.aclose()

        async def reopened() -> bool:
            return (await open_stream(first_key)).status_code == 200

        await eventually(reopened, timeout=60)


async def test_a_stream_whose_client_falls_behind_its_byte_budget_ends_with_an_overflow_event(
    settings: Settings, runtime: Runtime
) -> None:
    started = await define_and_start(runtime.pool, settings, "demo.busy", ONE_STEP, {})
    execution_id: uuid.UUID = started.id
    budget = 4096
    hub = StreamHub(msgspec.structs.replace(settings, stream_buffer_max_bytes=budget))
    hub.start()
    tenant_id = await runtime.pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", execution_id)
    subscription = await hub.subscribe(tenant_id, owner="dev:slow-reader")
    session = StreamSession(
        runtime.pool, subscription, StreamTimings(60, 60), root=execution_id, positions={execution_id: 0}
    )
    messages = session.messages([execution_id])
    try:
        async with asyncio.timeout(30):
            assert (await anext(messages)).id == "1"  # caught up; the stream now reads nothing for a while
        # Far more live events than the budget holds, published while the client reads none of them.
        tenant_id = await runtime.pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", execution_id)
        async with runtime.pool.acquire() as connection, connection.transaction():
            rows = await append_events(
                connection,
                tenant_id=tenant_id,
                execution_id=execution_id,
                after_sequence=1,
                events=[NewEvent("WORKFLOW_STARTED", WorkflowSnapshot(status="running")) for _ in range(100)],
                topic=settings.topics.events,
            )
        assert sum(len(row.payload) for row in rows) > 4 * budget
        for row in rows:
            await runtime.producer.send_and_wait(row.topic, row.payload, key=row.key)

        async def cut_off() -> bool:
            return subscription.overflowed

        await eventually(cut_off, timeout=60)
        assert 0 < subscription.buffered_bytes <= budget

        # The client gets what was buffered, in order, then the overflow event, and the stream ends.
        async with asyncio.timeout(30):
            rest = [message async for message in messages]
        *buffered, last = rest
        assert [int(str(message.id)) for message in buffered] == list(range(2, 2 + len(buffered)))
        assert 0 < len(buffered) < 100
        assert last.event == "overflow" and last.id is None
        overflow = json.loads(str(last.data))
        assert overflow["type"] == "Overflow"
        assert "FLOWLINE_STREAM_BUFFER_MAX_BYTES" in overflow["detail"] and "Last-Event-ID" in overflow["detail"]
    finally:
        await messages.aclose()
        await hub.stop()
