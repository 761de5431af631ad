"""An idle consumer parks (no fetches) until a publisher rings through PostgreSQL, then reads what came."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer
from flowline.kafka.outbox import OutboxPublisher, enqueue, outgoing
from flowline.kafka.parking import Doorbell, Parking, channel
from flowline.messages import ExecutionEvent
from flowline.runtime.service import Runtime
from flowline.settings import Settings

from tests.support import eventually


def _event(tenant_id: uuid.UUID) -> ExecutionEvent:
    return ExecutionEvent(
        tenant_id=tenant_id, execution_id=uuid.uuid4(), sequence=1, event="WORKFLOW_STARTED", timestamp_ms=1
    )


async def test_a_parked_consumer_wakes_when_a_publisher_rings_and_reads_the_record(
    runtime: Runtime, settings: Settings
) -> None:
    # Parks far longer than the test may take: only a ring can end it.
    settings = msgspec.structs.replace(settings, kafka_idle_park_seconds=600)
    topic = settings.topics.events
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=f"parking-{uuid.uuid4()}", fetch_max_wait_ms=4
    )
    await consumer.start()
    parking = Parking(consumer, [topic], settings)
    publisher = OutboxPublisher(
        runtime.pool,
        runtime.producer,
        runtime.messaging_metrics,
        dead_letter_topic=settings.topics.dead_letter,
        doorbell=Doorbell(runtime.pool, 600),
    )
    try:
        await eventually(lambda: _assigned(consumer))
        parked = asyncio.create_task(parking.park())
        await eventually(lambda: _paused(consumer))  # listening, and fetching nothing

        tenant_id = await runtime.pool.fetchval("SELECT id FROM tenants WHERE slug = 'dev'")
        async with runtime.pool.acquire() as connection, connection.transaction():
            rows = await enqueue(connection, [outgoing(topic, _event(tenant_id))])
        assert await publisher.publish(rows)

        assert await parked, "the park ended without a ring"
        assert not consumer.paused()
        batch = await consumer.getmany(timeout_ms=10_000)
        assert [record.value for records in batch.values() for record in records] == [rows[0].payload]
    finally:
        await parking.close()
        await consumer.stop()


async def test_a_publisher_rings_only_for_partitions_it_left_quiet(runtime: Runtime, settings: Settings) -> None:
    topic = settings.topics.events
    rings: list[tuple[str, str]] = []
    listener = await asyncpg.connect(settings.database_url)
    await listener.add_listener(channel(topic), lambda *notification: rings.append(notification[2:]))
    try:
        doorbell = Doorbell(runtime.pool, quiet_seconds=600)
        first = await runtime.producer.send_and_wait(topic, b"1", partition=0)
        await doorbell.ring_after([first])  # never published to: rings
        await doorbell.ring_after([await runtime.producer.send_and_wait(topic, b"2", partition=0)])  # just did
        await doorbell.ring_after([await runtime.producer.send_and_wait(topic, b"3", partition=1)])  # quiet: rings
        silent = Doorbell(runtime.pool, quiet_seconds=0)  # parking off (Apache Kafka): never rings
        await silent.ring_after([await runtime.producer.send_and_wait(topic, b"4", partition=2)])

        async def two_rings() -> bool:
            await listener.execute("SELECT 1")  # notifications arrive between statements
            return len(rings) >= 2

        await eventually(two_rings)
        await listener.execute("SELECT pg_notify($1, 'end')", channel(topic))
        await eventually(lambda: _got(rings, "end"))
        assert rings == [(channel(topic), ""), (channel(topic), ""), (channel(topic), "end")]
    finally:
        await listener.close()


async def _assigned(consumer: AIOKafkaConsumer) -> bool:
    await consumer.getmany(timeout_ms=10)
    return bool(consumer.assignment())


async def _paused(consumer: AIOKafkaConsumer) -> bool:
    return bool(consumer.paused())


async def _got(rings: list[tuple[str, str]], payload: str) -> bool:
    await asyncio.sleep(0.01)
    return any(ring[1] == payload for ring in rings)
