"""A stream session over the real hub, database and broker: a live event that skips ahead is filled in."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from flowline.db.events import NewEvent, append_events
from flowline.domain.snapshots import WorkflowSnapshot
from flowline.errors import ClientError
from flowline.runtime.service import Runtime
from flowline_api.domain.streams.hub import StreamHub
from flowline_api.domain.streams.service import StreamSession, StreamTimings, parse_positions, parse_sequence

from tests.support import define_and_start


def test_last_event_ids_parse() -> None:
    root, child = uuid.uuid4(), uuid.uuid4()
    assert parse_sequence(None) == 0 and parse_sequence("12") == 12
    assert parse_positions(f"{root}:3,{child}:7", root) == {root: 3, child: 7}
    assert parse_positions("5", root) == {root: 5}
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(ClientError):
            parse_sequence(bad)
    for bad in ("x:1", f"{root}:", f"{root}:1;{child}:2"):
        with pytest.raises(ClientError):
            parse_positions(bad, root)


async def test_a_live_event_past_a_missing_one_brings_the_missing_one_from_the_event_log(runtime: Runtime) -> None:
    settings = runtime.settings
    started = await define_and_start(
        runtime.pool, settings, "demo.gap", {"steps": [{"id": "a", "type": "action", "action": "core.noop"}]}, {}
    )
    tenant_id = await runtime.pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", started.id)
    hub = StreamHub(settings)
    hub.start()
    try:
        session = StreamSession(
            runtime.pool,
            await hub.subscribe(tenant_id),
            StreamTimings(60, 60),
            root=started.id,
            positions={started.id: 0},
        )
        messages = session.messages([started.id])
        async with asyncio.timeout(30):
            first = await anext(messages)
            assert first.id == "1"
            async with runtime.pool.acquire() as connection, connection.transaction():
                rows = await append_events(
                    connection,
                    tenant_id=tenant_id,
                    execution_id=started.id,
                    after_sequence=1,
                    events=[
                        NewEvent("WORKFLOW_STARTED", WorkflowSnapshot(status="running")),
                        NewEvent("WORKFLOW_COMPLETED", WorkflowSnapshot(status="completed")),
                    ],
                    topic=settings.topics.events,
                )
            # Only the last event reaches the broker (as if the one before were still in the outbox).
            await runtime.producer.send_and_wait(rows[1].topic, rows[1].payload, key=rows[1].key)
            rest = [message async for message in messages]
        assert [message.id for message in rest] == ["2", "3"]
        assert [msgspec.json.decode(str(message.data))["event"] for message in rest] == [
            "WORKFLOW_STARTED",
            "WORKFLOW_COMPLETED",
        ]
        assert hub.subscribers == 0  # the finished stream let go of its subscription
    finally:
        await hub.stop()
