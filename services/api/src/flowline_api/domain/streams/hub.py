"""Fan-out of the events and logs topics to the live streams of this api process, while any stream is open.

Every api process reads both topics in full with its own consumer (no consumer group, so every replica
sees every record) and hands each record to the subscriptions that follow its execution. The consumer runs
only while streams are open: the first subscription starts it from the end of the topics and waits until its
positions are fixed; it stops a linger after the last one closed. Nothing is polled per stream: an idle
stream is a queue waiting in memory, and an api without streams does not read the topics at all.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import Final

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import ConsumerStoppedError, KafkaConnectionError
from flowline.domain.task_log_limits import LogLimits, cut_record
from flowline.errors import TooManyRequests, Unavailable
from flowline.kafka.compat import broker_for
from flowline.kafka.security import client_options
from flowline.messages import EventMessage, ExecutionEvent, LogMessage, TaskLogBatch, TaskLogRecord, decoder
from flowline.settings import Settings

logger = logging.getLogger(__name__)

# A subscriber this far behind (in records, or in bytes: FLOWLINE_STREAM_BUFFER_MAX_BYTES) is cut off: its client
# reconnects with Last-Event-ID and catches up from the event log, instead of the api holding an unbounded
# backlog for it.
MAX_BUFFERED: Final = 10_000
START_TIMEOUT_SECONDS: Final = 30.0
# When a client refused for holding too many streams, or an api process with no room for another, may ask again.
STREAM_LIMIT_RETRY_AFTER_SECONDS: Final = 5
# How long the consumer outlives the last stream. A client that opens its next stream at once (the CLI opens
# one per task and reconnects within a second after an idle close; browsers' EventSource retries after 3 to
# 5 s) finds it running and pays no fresh start; an api whose streams are gone polls the broker this much
# longer.
LINGER_SECONDS: Final = 10.0


class Overflowed:
    """Put in a subscription's queue when it fell too far behind; the stream ends, saying why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


Item = ExecutionEvent | TaskLogRecord | Overflowed
# How a start of the consumer ended: None once its positions are fixed, else why it failed.
StartOutcome = BaseException | None


class Subscription:
    """What one stream receives: events (and, when asked, log records) of the executions it follows."""

    def __init__(self, hub: StreamHub, tenant_id: uuid.UUID, *, logs: bool, owner: str | None, max_bytes: int) -> None:
        self._hub = hub
        self.tenant_id = tenant_id  # the tenant whose executions it follows: records naming another never reach it
        self.logs = logs
        self.owner = owner  # whose stream it counts as (None: not a client's stream, not counted)
        self.log_limits = hub.log_limits
        self.executions: set[uuid.UUID] = set()
        self._max_bytes = max_bytes
        self.buffered_bytes = 0  # of the records waiting in the queue, as they were on the topic
        self._queue: asyncio.Queue[tuple[Item, int]] = asyncio.Queue()
        self.overflowed = False  # cut off: the stream ends

    def follow(self, execution_id: uuid.UUID) -> None:
        """Receive the records of this execution of the subscription's tenant from now on."""
        if execution_id not in self.executions:
            self.executions.add(execution_id)
            self._hub._subscribers.setdefault((self.tenant_id, execution_id), set()).add(self)

    def close(self) -> None:
        """Stop receiving anything; the hub stops following the topics a linger after its last subscription."""
        self._hub._open.discard(self)
        for execution_id in self.executions:
            key = (self.tenant_id, execution_id)
            followers = self._hub._subscribers.get(key)
            if followers is not None:
                followers.discard(self)
                if not followers:
                    del self._hub._subscribers[key]
        self.executions.clear()

    def put(self, item: ExecutionEvent | TaskLogRecord, size: int) -> None:
        """Queue a record of ``size`` bytes (called by the hub); past the buffer's bounds, end the stream instead.

        A record larger than the whole budget still passes when nothing waits before it.
        """
        if self.overflowed:
            return
        if self._queue.qsize() >= MAX_BUFFERED:
            self._overflow(f"more than {MAX_BUFFERED} records")
        elif self.buffered_bytes and self.buffered_bytes + size > self._max_bytes:
            self._overflow(f"more than {self._max_bytes} bytes of records")
        else:
            self.buffered_bytes += size
            self._queue.put_nowait((item, size))

    def _overflow(self, backlog: str) -> None:
        self.overflowed = True
        logger.warning(
            "stream of %s following %d executions cut off: its client fell %s behind",
            self.owner or "the api",
            len(self.executions),
            backlog,
        )
        self._queue.put_nowait((Overflowed(f"the client fell {backlog} behind the live events"), 0))

    async def get(self, wait_seconds: float) -> Item | None:
        """The next record, or None when ``wait_seconds`` pass without one."""
        try:
            item, size = await asyncio.wait_for(self._queue.get(), max(wait_seconds, 0))
        except TimeoutError:
            return None
        self.buffered_bytes -= size
        return item

    def get_nowait(self) -> Item | None:
        """The next record if one is waiting."""
        try:
            item, size = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self.buffered_bytes -= size
        return item


class StreamHub:
    """Follows the events and logs topics from their end while subscriptions are open, and dispatches records.

    ``start()`` and ``stop()`` bracket the hub's life; in between, one background task starts the consumer
    when a subscription opens and stops it when none has been open for ``linger_seconds``. Starting and
    stopping happen only in that task, so two subscriptions opening at once share one start, and one opening
    while the consumer stops waits for the next start.
    """

    def __init__(self, settings: Settings, *, linger_seconds: float = LINGER_SECONDS) -> None:
        self._bootstrap = settings.kafka_bootstrap
        self._client_options = client_options(settings)
        self._broker = broker_for(settings)
        self._events_topic = settings.topics.events
        self._logs_topic = settings.topics.logs
        self.log_limits = LogLimits.from_settings(settings)
        self._linger_seconds = linger_seconds
        self._max_per_owner = settings.stream_max_per_principal
        self._max_streams = settings.stream_max_per_process
        self._max_bytes = settings.stream_buffer_max_bytes
        self._events = decoder(EventMessage)
        self._logs = decoder(LogMessage)
        # Keyed by the tenant and the execution a record names, so that a record naming an execution of one
        # tenant under another's id reaches no one (docs/architecture.md §5.1).
        self._subscribers: dict[tuple[uuid.UUID, uuid.UUID], set[Subscription]] = {}
        # Open subscriptions, held weakly: a stream whose response never started (its client left at once)
        # never runs the ``finally`` that closes its subscription, which then lets go when it is dropped.
        self._open: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._wanted = asyncio.Event()  # set by each new subscription: an idle hub starts the consumer
        # The start of the consumer that new subscriptions wait for: done while one runs (or the hub stopped),
        # pending while none does.
        self._started: asyncio.Future[StartOutcome]
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        """How many executions have at least one live subscriber."""
        return len(self._subscribers)

    @property
    def following(self) -> bool:
        """Whether the consumer runs (from the first subscription until a linger after the last)."""
        return self._consumer is not None

    def start(self) -> None:
        """Serve subscriptions from now on; the consumer itself starts with the first one."""
        self._started = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._follow_while_wanted())

    async def stop(self) -> None:
        """Stop following the topics: open streams receive nothing more, waiting and new subscriptions fail."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    async def subscribe(self, tenant_id: uuid.UUID, *, logs: bool = False, owner: str | None = None) -> Subscription:
        """A new subscription to ``tenant_id``'s executions, following none yet; ``close()`` it when the stream ends.

        Returns once the consumer runs with its positions fixed, so that anything published afterwards reaches
        the subscription: a stream that subscribes and then reads the event log misses nothing between the two.

        Args:
            tenant_id: the tenant of the stream's executions (every route's stream is within one).
            logs: receive log records too.
            owner: the principal whose client stream this is, counted against the stream limits; None for the
                api's own short waits (a cancel's), which are not.

        Raises:
            TooManyRequests: ``owner`` holds FLOWLINE_STREAM_MAX_PER_PRINCIPAL streams already.
            Unavailable: the process holds FLOWLINE_STREAM_MAX_PER_PROCESS client streams already.
            KafkaConnectionError: the consumer could not start, or the hub stopped.
            TimeoutError: the consumer did not start within START_TIMEOUT_SECONDS.
        """
        if self._task is None:
            raise RuntimeError("the stream hub is not started")
        if owner is not None:
            self._check_room_for(owner)
        started = self._started
        subscription = Subscription(self, tenant_id, logs=logs, owner=owner, max_bytes=self._max_bytes)
        self._open.add(subscription)
        self._wanted.set()
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                failure = await asyncio.shield(started)  # one client leaving does not cancel the others' wait
        except BaseException:
            subscription.close()
            raise
        if failure is not None:
            subscription.close()
            raise KafkaConnectionError(f"the stream hub cannot follow the topics: {failure!r}") from failure
        return subscription

    def _check_room_for(self, owner: str) -> None:
        """Refuse a stream past the principal's or the process's limit (counted over the open streams)."""
        owners = [subscription.owner for subscription in self._open if subscription.owner is not None]
        if owners.count(owner) >= self._max_per_owner:
            raise TooManyRequests(
                f"you hold {self._max_per_owner} open streams on this api process, as many as one principal may "
                "(FLOWLINE_STREAM_MAX_PER_PRINCIPAL); close one first",
                retry_after_seconds=STREAM_LIMIT_RETRY_AFTER_SECONDS,
            )
        if len(owners) >= self._max_streams:
            raise Unavailable(
                f"this api process serves {self._max_streams} open streams, as many as it may "
                "(FLOWLINE_STREAM_MAX_PER_PROCESS); try again shortly",
                retry_after_seconds=STREAM_LIMIT_RETRY_AFTER_SECONDS,
            )

    async def _follow_while_wanted(self) -> None:
        """Start the consumer when a subscription opens, stop it when none is left; until cancelled."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wanted.wait()
                try:
                    consumer = await self._connect()
                except Exception as err:
                    logger.warning("stream hub: cannot follow the topics: %r", err)
                    self._started.set_result(err)  # the waiting subscriptions fail (503)
                    self._wait_for_next_start(loop)
                    continue
                self._consumer = consumer
                self._started.set_result(None)
                try:
                    await self._dispatch_while_open(consumer, loop)
                finally:
                    self._consumer = None
                    self._wait_for_next_start(loop)  # before stopping, so no subscription gets a stopping consumer
                    await consumer.stop()
        finally:
            if not self._started.done():
                self._started.set_result(ConsumerStoppedError())

    def _wait_for_next_start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make subscriptions from now on wait for a new start of the consumer, which the first of them asks for."""
        self._started = loop.create_future()
        self._wanted.clear()

    async def _connect(self) -> AIOKafkaConsumer:
        """A consumer holding every partition of both topics, its positions fixed at their current end."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **self._client_options,
            group_id=None,  # no group: every api process gets every partition
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self._broker.fetch_max_wait_ms(),
        )
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                await consumer.start()
                consumer.subscribe([self._events_topic, self._logs_topic])
                for _ in iter(int, 1):  # the assignment comes with the first metadata answer
                    if consumer.assignment():
                        break
                    await asyncio.sleep(0.02)
                for partition in consumer.assignment():
                    await consumer.position(partition)
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _dispatch_while_open(self, consumer: AIOKafkaConsumer, loop: asyncio.AbstractEventLoop) -> None:
        """Dispatch records until no subscription has been open for ``linger_seconds``."""
        idle_since: float | None = None
        workarounds = self._broker.consumer_workarounds(consumer)
        while True:
            if self._open:
                idle_since = None
            elif idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since >= self._linger_seconds:
                return
            try:
                # Before the fetch: a failure there leaves no batch undispatched.
                timeout_ms = await workarounds.before_fetch(1000)
                batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=2000)
                workarounds.after_fetch(batch)
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
                    for subscription in self._subscribers.get((event.tenant_id, event.execution_id), ()):
                        subscription.put(event, len(value))
                return
            message = self._logs.decode(value)
        except Exception as err:  # a poison record is the log-ingest's business; a stream just skips it
            logger.warning("stream hub: skipping an undecodable %s record: %s", topic, err)
            return
        followers = [
            subscription
            for subscription in self._subscribers.get((message.tenant_id, message.execution_id), ())
            if subscription.logs
        ]
        if not followers:
            return
        # Cut as log-ingest cuts them (docs/architecture.md §6.2), so a stream shows the text the download shows.
        records = [
            cut_record(record, self.log_limits.message_max_bytes)
            for record in (message.records if isinstance(message, TaskLogBatch) else [message])
        ]
        size = max(1, len(value) // len(records)) if records else 0  # each record's share of the message
        for subscription in followers:
            for log_record in records:
                subscription.put(log_record, size)
