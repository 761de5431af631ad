"""The producer's partitioner: the partition Kafka's default partitioner picks, so every client agrees."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner
from flowline.kafka.producer import partition_for


def test_a_key_goes_where_the_default_partitioner_sends_it() -> None:
    partitions = list(range(12))
    for _ in range(500):
        key = str(uuid.uuid4()).encode()
        assert partition_for(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_a_key_stays_on_its_partition() -> None:
    key = str(uuid.uuid4()).encode()
    partitions = list(range(6))
    assert len({partition_for(key, partitions, partitions) for _ in range(10)}) == 1


def test_a_message_without_a_key_goes_to_an_available_partition() -> None:
    assert all(partition_for(None, [0, 1, 2, 3], [2]) == 2 for _ in range(20))
