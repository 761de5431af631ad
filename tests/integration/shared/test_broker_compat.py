"""On the local broker consumers work around it; told the broker is Apache Kafka, they run the plain path."""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from flowline.kafka.compat import PLAIN_FETCH_MAX_WAIT_MS, ConsumerWorkarounds, broker_for
from flowline.kafka.consumer import MessageConsumer
from flowline.kafka.parking import channel
from flowline.messages import EventMessage, ExecutionEvent, encode
from flowline.runtime.service import Runtime
from flowline.settings import Settings

from tests.support import events_consumer, eventually

BrokerKind = Literal["tansu", "kafka"]


def _as(settings: Settings, broker: BrokerKind) -> Settings:
    """``settings`` on ``broker``, with workarounds that would act at once if they ran."""
    return msgspec.structs.replace(
        settings, kafka_broker=broker, kafka_lost_partition_seconds=0.001, kafka_idle_park_seconds=0.001
    )


async def _poll(consumer: AIOKafkaConsumer, workarounds: ConsumerWorkarounds) -> int:
    """One poll as a consumer makes it; how many records it brought."""
    batch = await consumer.getmany(timeout_ms=await workarounds.before_fetch(200))
    workarounds.after_fetch(batch)
    return sum(len(records) for records in batch.values())


@pytest.mark.parametrize(("broker", "reads_again"), [("tansu", True), ("kafka", False)])
async def test_a_position_past_the_end_is_read_again_from_the_start_only_on_the_local_broker(
    runtime: Runtime, settings: Settings, broker: BrokerKind, reads_again: bool
) -> None:
    settings = _as(settings, broker)
    partition = TopicPartition(settings.topics.events, 0)
    await runtime.producer.send_and_wait(partition.topic, b"{}", partition=0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, 1000)  # what a consumer meets once the local broker lost its data
        workarounds = broker_for(settings).consumer_workarounds(consumer)

        async def read() -> bool:
            return await _poll(consumer, workarounds) > 0

        async def end_known() -> bool:
            await _poll(consumer, workarounds)
            return consumer.highwater(partition) is not None

        if reads_again:
            await eventually(read)
        else:
            await eventually(end_known)
            for _ in range(3):  # each would find the partition lost, were the workaround on
                assert not await read()
            assert await consumer.position(partition) == 1000
    finally:
        await consumer.stop()


@pytest.mark.parametrize(("broker", "waits_ms"), [("tansu", (4, 10)), ("kafka", (PLAIN_FETCH_MAX_WAIT_MS,) * 2)])
async def test_the_fetch_wait_switches_under_load_only_on_the_local_broker(
    runtime: Runtime, settings: Settings, broker: BrokerKind, waits_ms: tuple[int, int]
) -> None:
    settings = _as(settings, broker)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=broker_for(settings).fetch_max_wait_ms(),
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(settings.topics.events, 0)])
        workarounds = broker_for(settings).consumer_workarounds(consumer)
        # The attribute the workaround sets exists on a started consumer (aiokafka's source reading it is checked
        # in tests/unit/shared/test_broker_compat.py).
        assert consumer._fetcher._fetch_max_wait_ms == waits_ms[0]
        for key in (b"one execution", b"another"):  # one partition: one fetch brings both
            await runtime.producer.send(settings.topics.events, b"{}", key=key, partition=0)
        await runtime.producer.flush()

        async def both_read() -> bool:
            return await _poll(consumer, workarounds) == 2

        await eventually(both_read)
        assert consumer._fetcher._fetch_max_wait_ms == waits_ms[1]
    finally:
        await consumer.stop()


async def _listening(runtime: Runtime, topic: str) -> bool:
    """Whether a session of the test's database listens for the doorbell of ``topic``."""
    listening: bool = await runtime.pool.fetchval(
        "SELECT exists (SELECT FROM pg_stat_activity WHERE datname = current_database() AND query = $1)",
        f'LISTEN "{channel(topic)}"',
    )
    return listening


async def _consume_then_idle(runtime: Runtime, settings: Settings) -> MessageConsumer[EventMessage]:
    """A started consumer of the events topic that has handled a record and polls on with nothing to read."""
    handled: list[int] = []

    async def handle(message: EventMessage) -> None:
        handled.append(message.sequence)

    event = ExecutionEvent(
        tenant_id=uuid.uuid4(), execution_id=uuid.uuid4(), sequence=1, event="TASK_STARTED", timestamp_ms=1
    )
    await runtime.producer.send_and_wait(settings.topics.events, encode(event), key=event.execution_id.bytes)
    consumer: MessageConsumer[EventMessage] = events_consumer(
        runtime, settings, f"compat-{uuid.uuid4().hex[:8]}", handle
    )
    await consumer.start()

    async def handled_once() -> bool:
        await consumer.poll_once()
        return handled == [1]

    await eventually(handled_once)
    return consumer


async def test_an_idle_consumer_on_the_local_broker_parks_listening_for_the_doorbell(
    runtime: Runtime, settings: Settings
) -> None:
    settings = _as(settings, "tansu")
    consumer = await _consume_then_idle(runtime, settings)
    try:

        async def parked() -> bool:
            await consumer.poll_once()
            return await _listening(runtime, settings.topics.events)

        await eventually(parked)
    finally:
        await consumer.stop()


async def test_a_consumer_on_apache_kafka_never_parks_and_its_publishers_never_ring(
    runtime: Runtime, settings: Settings
) -> None:
    settings = _as(settings, "kafka")
    consumer = await _consume_then_idle(runtime, settings)
    try:
        for _ in range(3):  # idle far longer than kafka_idle_park_seconds
            await consumer.poll_once()
        assert not await _listening(runtime, settings.topics.events)
    finally:
        await consumer.stop()
    assert broker_for(settings).doorbell(runtime.pool) is None
