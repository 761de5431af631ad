"""Topics the broker creates by itself have the layout Flowline's consumers expect."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from flowline.settings import Settings, load_settings


async def test_a_topic_the_broker_creates_on_first_use_has_flowlines_partition_count(settings: Settings) -> None:
    # After losing its data the local broker creates each topic again on first use; a consumer group would read
    # none of the partitions a topic gained (Tansu hands a rejoining member its old assignment).
    topic = f"{settings.topic_prefix}.first-use-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}")
        partitions = producer.client.cluster.partitions_for_topic(topic)
    finally:
        await producer.stop()
    assert partitions is not None
    assert len(partitions) == load_settings({}).topic_partitions == settings.topic_partitions
