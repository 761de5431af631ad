"""The stream hub follows the topics only while a stream is open, and a stream opened on it misses nothing."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError
from flowline.db.events import NewEvent, append_events
from flowline.domain.snapshots import WorkflowSnapshot
from flowline.runtime.service import Runtime
from flowline_api.domain.streams.hub import StreamHub, Subscription
from flowline_api.domain.streams.service import StreamSession, StreamTimings

from tests.support import define_and_start, eventually

ONE_STEP = {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}


async def stream_to_the_end(runtime: Runtime, subscription: Subscription, execution_id: uuid.UUID) -> list[str]:
    """The event ids a stream sends when the execution's last two events are published right after its catch-up.

    The session fills a gap from the event log only when a later live event shows one, so the two events can
    reach it only live: a hub that had not fixed its positions before the catch-up leaves the stream waiting.
    """
    settings = runtime.settings
    session = StreamSession(
        runtime.pool, subscription, StreamTimings(60, 60), root=execution_id, positions={execution_id: 0}
    )
    messages = session.messages([execution_id])
    async with asyncio.timeout(30):
        caught_up = await anext(messages)  # the stored WORKFLOW_CREATED
        tenant_id = await runtime.pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", execution_id)
        async with runtime.pool.acquire() as connection, connection.transaction():
            rows = await append_events(
                connection,
                tenant_id=tenant_id,
                execution_id=execution_id,
                after_sequence=1,
                events=[
                    NewEvent("WORKFLOW_STARTED", WorkflowSnapshot(status="running")),
                    NewEvent("WORKFLOW_COMPLETED", WorkflowSnapshot(status="completed")),
                ],
                topic=settings.topics.events,
            )
        for row in rows:
            await runtime.producer.send_and_wait(row.topic, row.payload, key=row.key)
        rest = [message async for message in messages]
    return [str(message.id) for message in [caught_up, *rest]]


async def tenant_of(runtime: Runtime, execution_id: uuid.UUID) -> uuid.UUID:
    tenant_id: uuid.UUID = await runtime.pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", execution_id)
    return tenant_id


async def start_execution(runtime: Runtime, ref: str) -> uuid.UUID:
    started = await define_and_start(runtime.pool, runtime.settings, ref, ONE_STEP, {})
    execution_id: uuid.UUID = started.id
    return execution_id


async def test_the_hub_follows_the_topics_only_while_a_stream_is_open(runtime: Runtime) -> None:
    first, second, third, fourth = [
        await start_execution(runtime, f"demo.lazy-{name}") for name in ("a", "b", "c", "d")
    ]
    tenant_id = await tenant_of(runtime, first)
    hub = StreamHub(runtime.settings, linger_seconds=0.2)

    async def stopped() -> bool:
        return not hub.following

    hub.start()
    try:
        await asyncio.sleep(0.5)  # time enough for a hub that does not wait for a stream to start its consumer
        assert not hub.following

        # Two streams opening at once return only once the consumer runs (its positions fixed), and each gets
        # the events published after its catch-up.
        first_subscription, second_subscription = await asyncio.gather(
            hub.subscribe(tenant_id), hub.subscribe(tenant_id)
        )
        assert hub.following
        assert await asyncio.gather(
            stream_to_the_end(runtime, first_subscription, first),
            stream_to_the_end(runtime, second_subscription, second),
        ) == [["1", "2", "3"], ["1", "2", "3"]]
        await eventually(stopped)  # the last stream ended and the linger passed
        assert hub.subscribers == 0

        # A stream opening just as the consumer stops (or right after) gets a consumer of its own that runs.
        subscription = await hub.subscribe(tenant_id)
        subscription.close()
        while hub.following:
            await asyncio.sleep(0.005)
        subscription = await hub.subscribe(tenant_id)
        assert hub.following
        assert await stream_to_the_end(runtime, subscription, third) == ["1", "2", "3"]
        await eventually(stopped)

        # A stream whose response never started drops its subscription without closing it: the hub stops anyway.
        unclosed = await hub.subscribe(tenant_id)
        assert hub.following
        del unclosed
        await eventually(stopped)

        # And follows again for the next stream.
        subscription = await hub.subscribe(tenant_id)
        assert await stream_to_the_end(runtime, subscription, fourth) == ["1", "2", "3"]
    finally:
        await hub.stop()


async def test_a_stopped_hub_lets_go_of_its_open_streams_and_refuses_new_ones(runtime: Runtime) -> None:
    execution_id = await start_execution(runtime, "demo.lazy-stop")
    hub = StreamHub(runtime.settings)
    hub.start()
    subscription = await hub.subscribe(await tenant_of(runtime, execution_id))
    session = StreamSession(
        runtime.pool, subscription, StreamTimings(60, 60), root=execution_id, positions={execution_id: 0}
    )
    messages = session.messages([execution_id])
    try:
        assert (await anext(messages)).id == "1"
        waiting = asyncio.create_task(anext(messages))  # the open stream waits for a live event
        async with asyncio.timeout(20):
            await hub.stop()
        assert not hub.following and not waiting.done()
        with pytest.raises(KafkaConnectionError):
            await hub.subscribe(uuid.uuid4())
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    finally:
        await messages.aclose()
        await hub.stop()
