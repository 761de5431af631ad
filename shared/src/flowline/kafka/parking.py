"""An idle consumer parked on the local broker, and the doorbell (PostgreSQL NOTIFY) that wakes it.

The local broker (Tansu) answers a fetch only when the fetch's wait is up, so a consumer someone waits on
fetches every few milliseconds to keep an execution's hops short: on an idle stack that polling was most of
the CPU it used. A consumer that has had no records for ``kafka_idle_park_seconds`` pauses its partitions
(no fetches) until a publisher rings or as long again has passed. Publishers ring, after the broker
acknowledged their records, for each topic whose partition had no record from them for that long: under load
nobody rings, and a parked consumer wakes the moment records arrive. Records from a producer that does not
ring (another system producing to Kafka) wait at most one park. On Apache Kafka, whose fetches answer as soon
as data arrives, nothing parks and nobody rings (``flowline.kafka.compat``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord, RecordMetadata

from flowline.runtime.outages import OUTAGE_ERRORS
from flowline.settings import Settings

logger = logging.getLogger(__name__)

# How long a consumer looks for records after a park that no ring ended: a few short fetches, where the
# consumer's usual poll would fetch for 200 ms, every few milliseconds on the local broker.
LOOK_MS = 20


def channel(topic: str) -> str:
    """The NOTIFY channel that rings for ``topic`` (topics are prefixed, so stacks sharing a database stay apart)."""
    return f"flowline:{topic}"


class Doorbell:
    """Rings for the topics whose partitions this publisher left quiet for ``quiet_seconds``; 0: never rings."""

    def __init__(self, pool: asyncpg.Pool, quiet_seconds: float) -> None:
        self._pool = pool
        self._quiet_seconds = quiet_seconds
        self._last_record: dict[tuple[str, int], float] = {}

    async def ring_after(self, delivered: Iterable[RecordMetadata]) -> None:
        """Ring for the topics of ``delivered`` records that a parked consumer may be waiting on.

        A failure is logged, not raised: a consumer that misses the ring wakes by itself within one park.
        """
        if not self._quiet_seconds:
            return
        now = time.monotonic()
        quiet = set()
        for record in delivered:
            partition = (record.topic, record.partition)
            if now - self._last_record.get(partition, -self._quiet_seconds) >= self._quiet_seconds:
                quiet.add(record.topic)
            self._last_record[partition] = now
        if quiet:
            try:
                await self._pool.execute(
                    "SELECT pg_notify(c, '') FROM unnest($1::text[]) AS c", [channel(topic) for topic in quiet]
                )
            except OUTAGE_ERRORS as err:
                logger.debug("ringing for %s failed (a parked consumer wakes by itself): %s", quiet, err)


class Parking:
    """Pauses an idle consumer's partitions until its doorbell rings or ``park_seconds`` pass.

    Call ``after`` with each poll's records and ``wait_while_idle`` before each fetch.
    """

    def __init__(self, consumer: AIOKafkaConsumer, topics: Sequence[str], settings: Settings) -> None:
        self._consumer = consumer
        self._channels = [channel(topic) for topic in topics]
        self._database_url = settings.database_url
        self._park_seconds = settings.kafka_idle_park_seconds
        self._last_records = time.monotonic()
        self._rung = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    def after(self, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]) -> None:
        """Note when records last came."""
        if batch:
            self._last_records = time.monotonic()

    async def wait_while_idle(self, poll_ms: int) -> int:
        """Park unless records came lately; then say how long the next poll should wait for records.

        Returns:
            ``poll_ms``, or after a park that ended with no ring, just long enough for one short fetch: had
            records come, someone would have rung (and records from elsewhere may wait for the next look).
        """
        if not self._park_seconds or time.monotonic() - self._last_records < self._park_seconds:
            return poll_ms
        return poll_ms if await self.park() else min(poll_ms, LOOK_MS)

    async def park(self) -> bool:
        """Pause the consumer's partitions until a ring or ``park_seconds`` have passed.

        Returns:
            Whether a ring ended the park.
        """
        await self._listen()
        partitions = self._consumer.assignment()
        self._consumer.pause(*partitions)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rung.wait(), self._park_seconds)
            return self._rung.is_set()
        finally:
            # A ring that comes from here on wakes the next park: its records may have missed this fetch.
            self._rung.clear()
            # A rebalance while parked may have taken some away (those it brought were never paused).
            self._consumer.resume(*(partitions & self._consumer.assignment()))

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def _listen(self) -> None:
        """Listen for rings on a connection of its own, opened again after PostgreSQL came back."""
        if self._listener is not None and not self._listener.is_closed():
            return
        try:
            listener = await asyncpg.connect(self._database_url, timeout=5)
            for name in self._channels:
                await listener.add_listener(name, self._ring)
        except OUTAGE_ERRORS as err:
            logger.debug("cannot listen for rings, parking by time alone: %s", err)
            return
        self._listener = listener

    def _ring(self, connection: Any, pid: int, name: str, payload: str) -> None:
        self._rung.set()
