"""Consumers with manual offset commits after the database commit, retries and a dead-letter topic.

docs/architecture.md §4.7 and §4.8: offsets are committed only once the handler's transaction committed;
a message that cannot be decoded, that its handler refuses (``MessageRefused``), or that fails
``max_failures`` times, is copied to the dead-letter topic with its origin in headers and the consumer moves
on. Database or broker outages are waited out, not dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, KafkaError
from aiokafka.structs import ConsumerRecord

from flowline.kafka.compat import broker_for
from flowline.kafka.producer import ensure_topics
from flowline.kafka.security import client_options
from flowline.runtime.metrics import MessagingMetrics
from flowline.runtime.outages import is_outage
from flowline.runtime.request_ids import from_kafka_headers, request_id_set
from flowline.settings import Settings

logger = logging.getLogger(__name__)

MessageT = TypeVar("MessageT")
# A commit retries by itself while its topic is missing: after a broker lost its data that is forever. Past this,
# the consumer recreates the topics and goes on; the uncommitted records come again, which handlers allow.
COMMIT_TIMEOUT_SECONDS = 5.0
Handler = Callable[[MessageT], Awaitable[None]]
BatchHandler = Callable[[list[MessageT]], Awaitable[None]]


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets an in-flight batch finish and its offsets be committed before partitions move, and notes joins."""

    def __init__(self, lock: asyncio.Lock, joined: asyncio.Event, commit_held: Callable[[], Awaitable[None]]) -> None:
        self._lock = lock
        self._joined = joined
        self._commit_held = commit_held

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self._lock:
            await self._commit_held()  # the next owner starts after what this one handled

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        # Set on every assignment, an empty one included: a member may have no partition while the group
        # has more members than partitions, and it has still joined.
        self._joined.set()


class MessageRefused(Exception):
    """A message its handler will not apply, whatever the retries: it names a row of another tenant, say.

    The handler changed nothing; the consumer dead-letters the message at once and moves on.
    """


class NotJoined(Exception):
    """A consumer has not yet been given its partitions by its group (readiness)."""


class MessageConsumer(Generic[MessageT]):
    """Consumes topics in a group, decodes each record with one typed decoder, and calls the handler.

    Records with different keys are handled concurrently, records of one key in order. The handler
    must be idempotent (inbox or natural keys) since a crash before the commit redelivers. With a
    ``batch_handler`` instead, each partition's decoded records go to it in one call; a batch that
    fails for a reason other than an outage is retried one message at a time to isolate the poison.
    ``topic_decoders`` decode the records of the topics they name instead of ``decoder``: a topic open to
    other systems accepts fewer kinds of message than the internal ones.
    """

    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        topics: Sequence[str],
        decoder: msgspec.json.Decoder[MessageT],
        topic_decoders: Mapping[str, msgspec.json.Decoder[MessageT]] | None = None,
        handler: Handler[MessageT] | None = None,
        batch_handler: BatchHandler[MessageT] | None = None,
        producer: AIOKafkaProducer,
        metrics: MessagingMetrics,
        max_records: int = 500,
        background: bool = False,
    ) -> None:
        self.name = name
        self._topics = list(topics)
        self._decoder = decoder
        self._topic_decoders = dict(topic_decoders or {})
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        self._handler = handler
        self._batch_handler = batch_handler
        self._producer = producer
        self._metrics = metrics
        self._settings = settings
        self._dead_letter_topic = settings.topics.dead_letter
        self._max_failures = settings.consumer_max_failures
        self._max_records = max_records
        self._commit_interval = settings.consumer_commit_interval_ms / 1000
        self._held_offsets: dict[TopicPartition, int] = {}  # handled, not yet committed
        self._committed_at = time.monotonic()
        self._batch_lock = asyncio.Lock()
        self._joined = asyncio.Event()
        self._stopping = False
        broker = broker_for(settings)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            **client_options(settings),
            group_id=settings.consumer_group(name),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            fetch_max_wait_ms=broker.fetch_max_wait_ms(background=background),
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(settings.kafka_session_timeout_ms // 3, 100),
        )
        self._workarounds = broker.consumer_workarounds(
            self._consumer, background=background, parking_topics=self._topics
        )

    async def start(self) -> None:
        """Join the group and subscribe."""
        await self._consumer.start()
        self._consumer.subscribe(
            self._topics, listener=_WaitForBatch(self._batch_lock, self._joined, self._commit_held)
        )

    async def check_joined(self) -> None:
        """Raise ``NotJoined`` until the group gave this consumer its partitions (a readiness check).

        Until then its messages wait: a fresh group takes seconds to form (the coordinator waits for more
        members), and a service that said it was ready before would leave its first messages pending that long.
        """
        if not self._joined.is_set():
            raise NotJoined(f"consumer {self.name} has not joined its group yet")

    async def stop(self) -> None:
        """Leave the group (offsets of finished batches are already committed)."""
        self._stopping = True
        async with self._batch_lock:
            await self._commit_held()
            await self._consumer.stop()
        await self._workarounds.close()

    async def run(self) -> None:
        """Consume until ``stop()``."""
        while not self._stopping:
            try:
                await self.poll_once()
            except ConsumerStoppedError:
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("consumer %s: unexpected error, continuing", self.name)
                await asyncio.sleep(1)

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Fetch one batch, handle it and commit its offsets.

        Returns:
            How many records the batch held.
        """
        # Before the fetch: a failure there leaves no batch unhandled.
        timeout_ms = await self._workarounds.before_fetch(timeout_ms)
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self._max_records)
        self._workarounds.after_fetch(batch)
        await self._measure_lag()
        if not batch:
            if time.monotonic() - self._committed_at >= self._commit_interval:
                async with self._batch_lock:
                    await self._commit_held()
            return 0
        async with self._batch_lock:
            handled = await asyncio.gather(
                *(self._handle_partition(records) for records in batch.values()), return_exceptions=True
            )
            offsets = {tp: offset for tp, offset in zip(batch, handled, strict=True) if isinstance(offset, int)}
            failures = [
                (tp, error) for tp, error in zip(batch, handled, strict=True) if isinstance(error, BaseException)
            ]
            for tp, _ in failures:  # fetch those records again rather than commit past them
                self._consumer.seek(tp, batch[tp][0].offset)
            self._held_offsets.update(offsets)
            if time.monotonic() - self._committed_at >= self._commit_interval:
                await self._commit_held()
            if failures:
                raise failures[0][1]
        return sum(len(records) for records in batch.values())

    async def _measure_lag(self) -> None:
        """Set how many messages of each topic wait behind this consumer's position (after the fetched batch).

        The highwater comes with every fetch response, empty ones included, so this costs no request.
        """
        lag = dict.fromkeys(self._topics, 0)
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag[tp.topic] += max(highwater - await self._consumer.position(tp), 0)
        for topic, behind in lag.items():
            self._metrics.consumer_lag.labels(self.name, topic).set(behind)

    async def _commit_held(self) -> None:
        """Commit the offsets of the batches handled since the last commit (call holding the batch lock)."""
        offsets, self._held_offsets = self._held_offsets, {}
        self._committed_at = time.monotonic()
        if offsets:
            await self._commit(offsets)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await asyncio.wait_for(self._consumer.commit(offsets), COMMIT_TIMEOUT_SECONDS)
        except CommitFailedError as err:  # rebalanced meanwhile: the new owner redelivers, harmlessly
            logger.warning("consumer %s: commit failed after a rebalance: %s", self.name, err)
        except (TimeoutError, KafkaError) as err:
            logger.warning(
                "consumer %s: commit failed (%r); recreating missing topics, records come again", self.name, err
            )
            try:
                await ensure_topics(self._settings)
            except (KafkaError, OSError) as topics_err:
                logger.warning("consumer %s: topics could not be checked: %r", self.name, topics_err)

    async def _handle_partition(self, records: list[ConsumerRecord[bytes, bytes]]) -> int | None:
        """Handle one partition's records; the offset to commit, or None when some may be unhandled."""
        next_offset: int = records[-1].offset + 1
        if self._batch_handler is not None:
            decoded = [(record, message) for record in records if (message := await self._decode(record)) is not None]
            batch = [message for _, message in decoded]
            if decoded and not await self._apply(decoded[-1][0], self._batch_handler, batch, whole_batch=True):
                for record, message in decoded:
                    await self._apply(record, self._batch_handler, [message])
            return next_offset
        # Records of one key (one execution) are applied in order; different keys run concurrently.
        by_key: dict[bytes | None, list[ConsumerRecord[bytes, bytes]]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(record)
        await asyncio.gather(*(self._handle_in_order(same_key) for same_key in by_key.values()))
        if self._stopping:
            return None  # some records may be unhandled: leave the offset, redelivery is harmless
        return next_offset

    async def _handle_in_order(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        handler = self._handler
        assert handler is not None
        for record in records:
            if self._stopping:
                return
            message = await self._decode(record)
            if message is not None:
                await self._apply(record, handler, message)

    async def _decode(self, record: ConsumerRecord[bytes, bytes]) -> MessageT | None:
        try:
            return self._topic_decoders.get(record.topic, self._decoder).decode(record.value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as err:
            # RecursionError: nesting deeper than the decoder goes, which no retry will change.
            await self._dead_letter(record, f"cannot decode: {err}")
            return None

    async def _apply(
        self,
        record: ConsumerRecord[bytes, bytes],
        handler: Callable[[Any], Awaitable[None]],
        argument: Any,
        *,
        whole_batch: bool = False,
    ) -> bool:
        """Call the handler until it succeeds; outages are waited out, other failures counted.

        After ``consumer_max_failures`` failures ``record`` goes to the dead-letter topic. With
        ``whole_batch`` the first failure returns False instead, so the caller can retry
        the batch's messages one by one and dead-letter only the bad one.

        Returns:
            Whether the handler succeeded.
        """
        failures = 0
        # The rows a handler writes carry on the request id of the record it handles (one per handler call).
        request_id = None if whole_batch else from_kafka_headers(record.headers)
        while True:
            started = time.perf_counter()
            try:
                with request_id_set(request_id):
                    await handler(argument)
            except MessageRefused as err:
                self._metrics.handler_failures.labels(self.name).inc()
                if not whole_batch:  # a batch is tried again one message at a time, to refuse only this one
                    await self._dead_letter(record, f"refused: {err}")
                return False
            except Exception as err:
                self._metrics.handler_failures.labels(self.name).inc()
                if is_outage(err):
                    logger.warning("consumer %s: dependency unavailable, retrying: %s", self.name, err)
                    if self._stopping:
                        raise
                    await asyncio.sleep(min(0.2 * 2 ** min(failures, 5), 5.0))
                    failures = min(failures + 1, 10)
                    continue
                if whole_batch:
                    return False
                failures += 1
                if failures >= self._max_failures:
                    await self._dead_letter(record, f"{type(err).__name__}: {err}")
                    return False
                logger.warning("consumer %s: handler failed (%d), retrying: %r", self.name, failures, err)
                await asyncio.sleep(0.1 * failures)
                continue
            self._metrics.handle_seconds.labels(self.name).observe(time.perf_counter() - started)
            self._metrics.consumed.labels(self.name, "ok").inc(len(argument) if whole_batch else 1)
            return True

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        headers = [
            ("source-topic", record.topic.encode()),
            ("source-partition", str(record.partition).encode()),
            ("source-offset", str(record.offset).encode()),
            ("consumer", self.name.encode()),
            ("error", error[:2000].encode()),
        ]
        while True:
            try:
                await self._producer.send_and_wait(
                    self._dead_letter_topic, record.value, key=record.key, headers=headers
                )
                break
            except KafkaError as err:  # the record must not be skipped: wait for the broker
                if self._stopping:
                    raise
                logger.warning("consumer %s: dead-lettering failed, retrying: %s", self.name, err)
                await asyncio.sleep(1)
        self._metrics.consumed.labels(self.name, "dead_lettered").inc()
        logger.error("consumer %s: %s@%d dead-lettered: %s", self.name, record.topic, record.offset, error)
