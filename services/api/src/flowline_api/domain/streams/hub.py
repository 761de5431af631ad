"""Fan-out of the events and logs topics to the live streams of this api process.

Every api process reads both topics in full with its own consumer (no consumer group, so every replica
sees every record), starting from the end, and hands each record to the subscriptions that follow its
execution. Nothing is polled per stream: an idle stream is a queue waiting in memory.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Final

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError
from flowline.messages import EventMessage, ExecutionEvent, LogMessage, TaskLogBatch, TaskLogRecord, decoder
from flowline.settings import Settings

logger = logging.getLogger(__name__)

# A subscriber this far behind is cut off: its client reconnects with Last-Event-ID and catches up from the
# event log, instead of the api holding an unbounded backlog for it.
MAX_BUFFERED: Final = 10_000
START_TIMEOUT_SECONDS: Final = 30.0


class Overflowed:
    """Put in a subscription's queue when it fell too far behind; the stream ends."""


OVERFLOWED: Final = Overflowed()
Item = ExecutionEvent | TaskLogRecord | Overflowed


class Subscription:
    """What one stream receives: events (and, when asked, log records) of the executions it follows."""

    def __init__(self, hub: StreamHub, *, logs: bool) -> None:
        self._hub = hub
        self.logs = logs
        self.executions: set[uuid.UUID] = set()
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._overflowed = False

    def follow(self, execution_id: uuid.UUID) -> None:
        """Receive this execution's records from now on."""
        if execution_id not in self.executions:
            self.executions.add(execution_id)
            self._hub._subscribers.setdefault(execution_id, set()).add(self)

    def close(self) -> None:
        """Stop receiving anything."""
        for execution_id in self.executions:
            followers = self._hub._subscribers.get(execution_id)
            if followers is not None:
                followers.discard(self)
                if not followers:
                    del self._hub._subscribers[execution_id]
        self.executions.clear()

    def put(self, item: ExecutionEvent | TaskLogRecord) -> None:
        """Queue a record (called by the hub)."""
        if self._overflowed:
            return
        if self._queue.qsize() >= MAX_BUFFERED:
            self._overflowed = True
            self._queue.put_nowait(OVERFLOWED)
            return
        self._queue.put_nowait(item)

    async def get(self, wait_seconds: float) -> Item | None:
        """The next record, or None when ``wait_seconds`` pass without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), max(wait_seconds, 0))
        except TimeoutError:
            return None

    def get_nowait(self) -> Item | None:
        """The next record if one is waiting."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None


class StreamHub:
    """Follows the events and logs topics from their end and dispatches records to subscriptions."""

    def __init__(self, settings: Settings) -> None:
        self._events_topic = settings.topics.events
        self._logs_topic = settings.topics.logs
        self._events = decoder(EventMessage)
        self._logs = decoder(LogMessage)
        self._subscribers: dict[uuid.UUID, set[Subscription]] = {}
        self._stopping = False
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,  # no group: every api process gets every partition
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )

    @property
    def subscribers(self) -> int:
        """How many executions have at least one live subscriber."""
        return len(self._subscribers)

    def subscribe(self, *, logs: bool = False) -> Subscription:
        """A new subscription following nothing yet; ``close()`` it when the stream ends."""
        return Subscription(self, logs=logs)

    async def start(self) -> None:
        """Connect, take every partition of both topics and fix the positions at their current end.

        Returns once the positions are known, so that anything published afterwards reaches subscribers: a
        stream that subscribes and then reads the event log misses nothing between the two.
        """
        await self._consumer.start()
        try:
            self._consumer.subscribe([self._events_topic, self._logs_topic])
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                for _ in iter(int, 1):  # the assignment comes with the first metadata answer
                    if self._consumer.assignment():
                        break
                    await asyncio.sleep(0.02)
                for partition in self._consumer.assignment():
                    await self._consumer.position(partition)
        except BaseException:
            await self._consumer.stop()
            raise

    async def stop(self) -> None:
        """Stop reading; ``run()`` returns."""
        self._stopping = True
        await self._consumer.stop()

    async def run(self) -> None:
        """Dispatch records until ``stop()``."""
        while not self._stopping:
            try:
                batch = await self._consumer.getmany(timeout_ms=1000, max_records=2000)
            except ConsumerStoppedError:
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("stream hub: fetch failed, continuing")
                await asyncio.sleep(1)
                continue
            for partition, records in batch.items():
                for record in records:
                    self.dispatch(partition.topic, record.value or b"")

    def dispatch(self, topic: str, value: bytes) -> None:
        """Hand one record of ``topic`` to the subscriptions following its execution."""
        if not self._subscribers:
            return  # nobody listens: skip decoding
        try:
            if topic == self._events_topic:
                event = self._events.decode(value)
                if isinstance(event, ExecutionEvent):
                    for subscription in self._subscribers.get(event.execution_id, ()):
                        subscription.put(event)
                return
            message = self._logs.decode(value)
        except Exception as err:  # a poison record is the log-ingest's business; a stream just skips it
            logger.warning("stream hub: skipping an undecodable %s record: %s", topic, err)
            return
        followers = [
            subscription for subscription in self._subscribers.get(message.execution_id, ()) if subscription.logs
        ]
        if not followers:
            return
        records = message.records if isinstance(message, TaskLogBatch) else [message]
        for subscription in followers:
            for log_record in records:
                subscription.put(log_record)
