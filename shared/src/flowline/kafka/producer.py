"""The Kafka producer and topic setup shared by every service."""

from __future__ import annotations

import logging
import random
from functools import lru_cache

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from flowline.kafka.security import client_options
from flowline.settings import Settings

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4096)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The partition of a message by its key, as Kafka's default partitioner chooses it (murmur2).

    aiokafka hashes every message's key in pure Python; an execution's messages share their key (a change
    publishes a dozen events at once), so each key is hashed once while it is in use.
    """
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_hash(key) % len(all_partitions)]


def create_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica; start it and stop it in a ``finally``.

    Idempotent and transactional producers are not used: the local broker lacks InitProducerId, and
    consumers are idempotent anyway (docs/architecture.md §4.3).
    """
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        **client_options(settings),
        acks="all",
        linger_ms=0,  # send at once: batches still form while a request to the broker is in flight
        request_timeout_ms=10_000,
        partitioner=partition_for,
    )


async def ensure_topics(settings: Settings) -> None:
    """Create Flowline's topics with the configured partition count; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=1)
            for name in settings.topics.all()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:  # another service created them first
                pass
    finally:
        await admin.close()
