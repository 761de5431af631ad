"""Invariant 2: a publish that fails after the commit is delivered later by the relay."""

from __future__ import annotations

import json
import uuid

from flowline.kafka.outbox import OutboxPublisher, OutboxRow, enqueue, outgoing
from flowline.kafka.producer import create_producer
from flowline.messages import ExecutionEvent, decoder
from flowline.runtime.metrics import MessagingMetrics
from flowline.runtime.request_ids import HEADER, request_id_set
from flowline.runtime.service import OutboxRelay, Runtime
from flowline.settings import Settings
from prometheus_client import CollectorRegistry

from tests.support import eventually, read_topic

# A relay that knows of nothing due sleeps this long: longer than any test, so only the looks it decides on count.
ASLEEP = 3600.0


async def test_a_failed_publish_is_relayed(runtime: Runtime, settings: Settings) -> None:
    tenant_id = await runtime.pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    message = ExecutionEvent(
        tenant_id=tenant_id,
        execution_id=uuid.uuid4(),
        sequence=1,
        event="WORKFLOW_STARTED",
        data={"k": "v"},
        timestamp_ms=1,
    )
    with request_id_set("req-relayed"):  # the row keeps the request id until the relay sends it
        async with runtime.pool.acquire() as connection, connection.transaction():
            rows = await enqueue(connection, [outgoing(settings.topics.events, message)])

    broken = await _broken_publisher(runtime)
    assert await broken.publish(rows) is False
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox WHERE id = $1", rows[0].id) == 1

    relay = OutboxPublisher(
        runtime.pool,
        runtime.producer,
        runtime.messaging_metrics,
        grace_seconds=0,
        dead_letter_topic=runtime.settings.topics.dead_letter,
    )
    assert await relay.relay_once() == 1
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox WHERE id = $1", rows[0].id) == 0
    assert await relay.relay_once() == 0  # sent rows are not sent again

    [record] = await read_topic(settings, settings.topics.events, 1)
    assert decoder(ExecutionEvent).decode(record.value) == message
    assert record.key == str(message.execution_id).encode()
    assert record.headers == ((HEADER, b"req-relayed"),)


async def test_published_rows_leave_the_outbox(runtime: Runtime, settings: Settings) -> None:
    tenant_id = await runtime.pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    message = ExecutionEvent(
        tenant_id=tenant_id, execution_id=uuid.uuid4(), sequence=1, event="WORKFLOW_STARTED", timestamp_ms=1
    )
    async with runtime.pool.acquire() as connection, connection.transaction():
        rows = await enqueue(connection, [outgoing(settings.topics.events, message)])
    assert await runtime.outbox.publish(rows) is True
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 1  # removed in batches, off the hot path
    await runtime.outbox.remove_sent()
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0
    [record] = await read_topic(settings, settings.topics.events, 1)
    assert record.value == rows[0].payload
    assert not record.headers  # written outside any request


async def test_the_backlog_gauge_counts_rows_left_for_the_relay(runtime: Runtime, settings: Settings) -> None:
    tenant_id = await runtime.pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    messages = [
        ExecutionEvent(
            tenant_id=tenant_id, execution_id=uuid.uuid4(), sequence=1, event="WORKFLOW_STARTED", timestamp_ms=1
        )
        for _ in range(3)
    ]
    async with runtime.pool.acquire() as connection, connection.transaction():
        await enqueue(connection, [outgoing(settings.topics.events, message) for message in messages])
    registry = CollectorRegistry()
    relay = OutboxPublisher(
        runtime.pool,
        runtime.producer,
        MessagingMetrics(registry),
        grace_seconds=0,
        dead_letter_topic=runtime.settings.topics.dead_letter,
    )

    assert await relay.measure_backlog() == 3
    assert registry.get_sample_value("flowline_outbox_backlog_messages") == 3
    assert await relay.relay_once() == 3
    assert registry.get_sample_value("flowline_outbox_published_total", {"path": "relay"}) == 3
    assert await relay.measure_backlog() == 0
    assert registry.get_sample_value("flowline_outbox_backlog_messages") == 0


async def test_a_row_too_large_for_the_broker_is_dead_lettered_and_the_rest_of_its_batch_goes_on(
    runtime: Runtime, settings: Settings
) -> None:
    tenant_id = await runtime.pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")

    def event(size: int) -> ExecutionEvent:
        return ExecutionEvent(
            tenant_id=tenant_id,
            execution_id=uuid.uuid4(),
            sequence=1,
            event="TASK_COMPLETED",
            data={"output": "x" * size},
            timestamp_ms=1,
        )

    huge, small = event(2 * 1024 * 1024), event(10)
    async with runtime.pool.acquire() as connection, connection.transaction():
        rows = await enqueue(connection, [outgoing(settings.topics.events, m) for m in (huge, small)])
    registry = CollectorRegistry()
    relay = OutboxPublisher(
        runtime.pool,
        runtime.producer,
        MessagingMetrics(registry),
        grace_seconds=0,
        dead_letter_topic=settings.topics.dead_letter,
    )

    assert await relay.relay_once() == 2
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0
    [published] = await read_topic(settings, settings.topics.events, 1)
    assert published.value == rows[1].payload
    [note] = await read_topic(settings, settings.topics.dead_letter, 1)
    assert json.loads(note.value)["outboxId"] == str(rows[0].id)
    assert json.loads(note.value)["bytes"] == len(rows[0].payload)
    assert dict(note.headers)["error"].startswith(b"too large to publish")
    assert registry.get_sample_value("flowline_outbox_refused_total") == 1


async def _event_rows(runtime: Runtime, settings: Settings, count: int) -> list[OutboxRow]:
    """``count`` rows committed to the outbox and not published (as when their process died after the commit)."""
    tenant_id = await runtime.pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
    messages = [
        ExecutionEvent(
            tenant_id=tenant_id, execution_id=uuid.uuid4(), sequence=1, event="WORKFLOW_STARTED", timestamp_ms=1
        )
        for _ in range(count)
    ]
    async with runtime.pool.acquire() as connection, connection.transaction():
        return list(await enqueue(connection, [outgoing(settings.topics.events, m) for m in messages]))


async def _broken_publisher(runtime: Runtime) -> OutboxPublisher:
    """A publisher whose producer can no longer send, as when the broker is gone."""
    closed = create_producer(runtime.settings)
    await closed.start()
    await closed.stop()
    return OutboxPublisher(
        runtime.pool,
        closed,
        MessagingMetrics(CollectorRegistry()),
        grace_seconds=0,
        dead_letter_topic=runtime.settings.topics.dead_letter,
    )


def _publisher(runtime: Runtime, *, grace_seconds: float) -> OutboxPublisher:
    return OutboxPublisher(
        runtime.pool,
        runtime.producer,
        runtime.messaging_metrics,
        grace_seconds=grace_seconds,
        dead_letter_topic=runtime.settings.topics.dead_letter,
    )


async def test_a_relay_sleeps_until_the_oldest_row_is_past_the_grace_or_its_fallback(
    runtime: Runtime, settings: Settings
) -> None:
    relay = OutboxRelay(_publisher(runtime, grace_seconds=600), interval_seconds=0.2, fallback_seconds=ASLEEP)
    await relay.start(loops=1)
    assert relay.wait_seconds() == ASLEEP  # nothing in the outbox: only the fallback look

    await _event_rows(runtime, settings, 1)
    await relay.start(loops=1)
    # The loop sleeps toward the row's due time, not to the fallback; and the row is not relayed before.
    assert relay._due_at is not None
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 1


async def test_a_relay_relays_rows_a_dead_process_left_behind_at_its_look(runtime: Runtime, settings: Settings) -> None:
    rows = await _event_rows(runtime, settings, 2)
    relay = OutboxRelay(_publisher(runtime, grace_seconds=0), interval_seconds=0.2, fallback_seconds=ASLEEP)
    await relay.start(loops=1)
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert relay.wait_seconds() == ASLEEP
    published = await read_topic(settings, settings.topics.events, 2)
    assert sorted(record.value for record in published) == sorted(row.payload for row in rows)


async def test_a_failed_publish_wakes_its_relay(runtime: Runtime, settings: Settings) -> None:
    rows = await _event_rows(runtime, settings, 1)
    broken = await _broken_publisher(runtime)
    relay = OutboxRelay(broken, interval_seconds=0.01, fallback_seconds=ASLEEP)
    assert not relay._wake.is_set()
    assert await broken.publish(rows) is False
    await eventually(lambda: _woken(relay))  # and its look relays them, as above


async def test_published_rows_wake_the_relay_to_forget_them(runtime: Runtime, settings: Settings) -> None:
    publisher = _publisher(runtime, grace_seconds=600)
    relay = OutboxRelay(publisher, interval_seconds=0.01, fallback_seconds=ASLEEP)
    assert await publisher.publish(await _event_rows(runtime, settings, 1)) is True
    await eventually(lambda: _woken(relay))
    await relay.start(loops=1)
    assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0


async def _woken(relay: OutboxRelay) -> bool:
    return relay._wake.is_set()
