"""Helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from flowline.settings import Settings


async def read_topic(settings: Settings, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    """The first ``count`` records of ``topic`` (from the beginning, outside any consumer group)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=200)
                for partition_records in batch.values():
                    records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait until ``check()`` is true (the suite never asserts on timings; this only bounds a hang)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)
