"""What consumers do differently on the local broker (Tansu 0.6) than on Apache Kafka, by FLOWLINE_KAFKA_BROKER.

Tansu, which the embedded stack, the tests and the benchmarks run on, differs from Apache Kafka where a
consumer notices:

- It answers a fetch only when the fetch's wait is up, not when data arrives: the wait is latency on every
  hop, so consumers someone waits on fetch with short waits (``FetchWait``) and an idle one parks until a
  publisher rings (``flowline.kafka.parking``).
- Having lost its data (it keeps it in memory), it answers a fetch past a log's new end with no records,
  forever, where Apache Kafka answers OFFSET_OUT_OF_RANGE and aiokafka starts over by itself
  (``LostPartitions``; on Apache Kafka a leader change may leave a highwater behind a consumer's position for
  a while, which this would take for a loss).
- It creates a lost topic again on first use with 4 partitions, hence ``Settings.topic_partitions``' default
  (Flowline creates its topics with that count on either broker).

``broker_for(settings)`` chooses once: on ``tansu`` consumers use these workarounds, tuned by the
``kafka_*`` settings that name them; on ``kafka`` they run aiokafka's plain path (one fixed fetch wait, no
parking, no doorbell, no seeks) and those settings are not read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from flowline.kafka.parking import Doorbell, Parking
from flowline.settings import Settings

logger = logging.getLogger(__name__)

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]
# aiokafka's default: Apache Kafka answers a waiting fetch as soon as data arrives, so a long wait costs nothing.
PLAIN_FETCH_MAX_WAIT_MS = 500


def set_fetch_max_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Make ``consumer``'s fetch requests from now on wait up to ``wait_ms`` for data.

    aiokafka (0.14) takes the wait only as an argument of the consumer and has no setter; its fetcher reads
    this private attribute for each fetch request it builds (tests/unit/shared/test_broker_compat.py fails
    when an upgrade stops it doing so).
    """
    consumer._fetcher._fetch_max_wait_ms = wait_ms


class FetchWait:
    """How long a consumer's next fetch waits: short while one execution's messages come at a time, else long.

    A short wait keeps the hops of an execution on an idle system short; under load it only makes more, smaller
    fetches, each costing the broker and the consumer CPU. Call ``after`` with the records of each poll.
    """

    def __init__(self, consumer: AIOKafkaConsumer, settings: Settings) -> None:
        self._consumer = consumer
        self._idle_ms = settings.kafka_fetch_max_wait_ms
        self._busy_ms = settings.kafka_busy_fetch_max_wait_ms

    def after(self, batch: Batch) -> None:
        """Choose the wait of the fetches after this poll from the executions (record keys) it brought."""
        keys = {record.key for records in batch.values() for record in records}
        set_fetch_max_wait(self._consumer, self._busy_ms if len(keys) > 1 else self._idle_ms)


class LostPartitions:
    """Reads again from the start each partition whose log has ended before the consumer's position for a while.

    Left alone, the consumer would wait until the new log grew past its old position, which the few messages a
    stalled execution needs never make it do. The end (highwater) comes with every fetch response, so looking
    costs no request. Only a partition that stays past its end for ``settings.kafka_lost_partition_seconds``
    counts as lost (0: never).
    """

    def __init__(self, consumer: AIOKafkaConsumer, settings: Settings) -> None:
        self._consumer = consumer
        self._after_seconds = settings.kafka_lost_partition_seconds
        self._past_the_end_since: dict[TopicPartition, float] = {}

    async def seek_lost(self) -> None:
        """Seek to the beginning of the partitions found lost; call between polls, with no batch in hand."""
        if not self._after_seconds:
            return
        now = time.monotonic()
        past_the_end = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None and await self._consumer.position(tp) > highwater:
                past_the_end[tp] = self._past_the_end_since.get(tp, now)
        self._past_the_end_since = past_the_end
        lost = [tp for tp, since in past_the_end.items() if now - since >= self._after_seconds]
        if lost:
            logger.warning("the broker's logs of %s end before this consumer's position: reading them again", lost)
            for tp in lost:
                del self._past_the_end_since[tp]
            await self._consumer.seek_to_beginning(*lost)


class ConsumerWorkarounds(Protocol):
    """What one consumer does around each of its fetches for the broker's sake."""

    async def before_fetch(self, timeout_ms: int) -> int:
        """Call before each fetch, with no batch in hand; returns how long the fetch should wait for records."""
        ...

    def after_fetch(self, batch: Batch) -> None:
        """Call with the records of each fetch."""
        ...

    async def close(self) -> None:
        """Call once the consumer stopped."""
        ...


class Broker(Protocol):
    """The broker's kind, as consumers and publishers need to know it."""

    def fetch_max_wait_ms(self, *, background: bool = False) -> int:
        """The wait a new consumer's fetches start with (``background``: its messages wait for no one)."""
        ...

    def consumer_workarounds(
        self, consumer: AIOKafkaConsumer, *, background: bool = False, parking_topics: Sequence[str] = ()
    ) -> ConsumerWorkarounds:
        """The workarounds of ``consumer``, which may park between messages of ``parking_topics`` (none: never)."""
        ...

    def doorbell(self, pool: asyncpg.Pool) -> Doorbell | None:
        """What a publisher rings after its records were acknowledged, for parked consumers; None: nothing."""
        ...


def broker_for(settings: Settings) -> Broker:
    """The broker ``settings.kafka_broker`` names."""
    return ApacheKafka() if settings.kafka_broker == "kafka" else Tansu(settings)


class PlainPath:
    """Apache Kafka's consumers: nothing around the fetches."""

    async def before_fetch(self, timeout_ms: int) -> int:
        """The fetch waits as long as asked."""
        return timeout_ms

    def after_fetch(self, batch: Batch) -> None:
        """Nothing to note."""

    async def close(self) -> None:
        """Nothing to release."""


class ApacheKafka:
    """Apache Kafka: aiokafka's plain path."""

    def fetch_max_wait_ms(self, *, background: bool = False) -> int:
        """One fixed wait for every consumer."""
        return PLAIN_FETCH_MAX_WAIT_MS

    def consumer_workarounds(
        self, consumer: AIOKafkaConsumer, *, background: bool = False, parking_topics: Sequence[str] = ()
    ) -> ConsumerWorkarounds:
        """None."""
        return PlainPath()

    def doorbell(self, pool: asyncpg.Pool) -> Doorbell | None:
        """None: nothing parks."""
        return None


class TansuWorkarounds:
    """A consumer on the local broker: lost partitions read again, fetch waits switched, an idle consumer parked."""

    def __init__(self, lost_partitions: LostPartitions, fetch_wait: FetchWait | None, parking: Parking | None) -> None:
        self._lost_partitions = lost_partitions
        self._fetch_wait = fetch_wait
        self._parking = parking

    async def before_fetch(self, timeout_ms: int) -> int:
        """Read lost partitions again, then park while idle."""
        await self._lost_partitions.seek_lost()
        return timeout_ms if self._parking is None else await self._parking.wait_while_idle(timeout_ms)

    def after_fetch(self, batch: Batch) -> None:
        """Choose the next fetch's wait and note whether records came."""
        if self._fetch_wait is not None:
            self._fetch_wait.after(batch)
        if self._parking is not None:
            self._parking.after(batch)

    async def close(self) -> None:
        """Stop listening for the doorbell."""
        if self._parking is not None:
            await self._parking.close()


class Tansu:
    """The local broker, with the workarounds the ``kafka_*`` settings tune."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def fetch_max_wait_ms(self, *, background: bool = False) -> int:
        """A short wait for consumers someone waits on, a longer one for the others."""
        if background:
            return self._settings.kafka_background_fetch_max_wait_ms
        return self._settings.kafka_fetch_max_wait_ms

    def consumer_workarounds(
        self, consumer: AIOKafkaConsumer, *, background: bool = False, parking_topics: Sequence[str] = ()
    ) -> ConsumerWorkarounds:
        """All three; a background consumer keeps its one long wait."""
        return TansuWorkarounds(
            LostPartitions(consumer, self._settings),
            None if background else FetchWait(consumer, self._settings),
            Parking(consumer, parking_topics, self._settings) if parking_topics else None,
        )

    def doorbell(self, pool: asyncpg.Pool) -> Doorbell | None:
        """Rings for partitions left quiet as long as a consumer takes to park."""
        return Doorbell(pool, self._settings.kafka_idle_park_seconds)
