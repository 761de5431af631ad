"""What a background service owns (pool, producer, outbox, metrics) and how it runs until SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
import uvloop
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from flowline.db.pool import create_pool
from flowline.kafka.compat import broker_for
from flowline.kafka.consumer import BatchHandler, Handler, MessageConsumer
from flowline.kafka.outbox import OutboxPublisher
from flowline.kafka.producer import create_producer, ensure_topics
from flowline.runtime.loops import LoopService
from flowline.runtime.metrics import MessagingMetrics
from flowline.runtime.ops import ReadinessCheck, create_ops_app, http_server, stop_on_signals
from flowline.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Open resources of one service process."""

    settings: Settings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    registry: CollectorRegistry
    messaging_metrics: MessagingMetrics
    outbox: OutboxPublisher
    _consumers: list[MessageConsumer[Any]] = field(default_factory=list, init=False)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        *,
        session_setup: str | None = None,
        acquire_timeout: float | None = None,
    ) -> Runtime:
        """Connect to PostgreSQL and Kafka, creating the topics if they are missing.

        ``session_setup`` runs once on every new database connection, and taking a connection waits at most
        ``acquire_timeout`` (see ``create_pool``).
        """
        settings.require_connections()
        registry = registry or CollectorRegistry()
        metrics = MessagingMetrics(registry)
        pool = await create_pool(settings, session_setup=session_setup, acquire_timeout=acquire_timeout)
        producer = create_producer(settings)
        try:
            await ensure_topics(settings)
            await producer.start()
        except BaseException:
            await pool.close()
            await producer.stop()
            raise
        outbox = OutboxPublisher(
            pool,
            producer,
            metrics,
            grace_seconds=settings.outbox_relay_grace_seconds,
            dead_letter_topic=settings.topics.dead_letter,
            doorbell=broker_for(settings).doorbell(pool),
        )
        return cls(settings, pool, producer, registry, metrics, outbox)

    def consumer(
        self,
        name: str,
        topics: Sequence[str],
        decoder: msgspec.json.Decoder[Any],
        *,
        topic_decoders: Mapping[str, msgspec.json.Decoder[Any]] | None = None,
        handler: Handler[Any] | None = None,
        batch_handler: BatchHandler[Any] | None = None,
        max_records: int = 500,
        background: bool = False,
    ) -> MessageConsumer[Any]:
        """A consumer of ``topics`` in the group ``name``, dead-lettering through this runtime's producer.

        A ``background`` consumer's messages wait for no one: it polls the broker less often (see
        ``Settings.kafka_background_fetch_max_wait_ms``). ``topic_decoders`` decode the topics they name instead
        of ``decoder``.
        """
        consumer: MessageConsumer[Any] = MessageConsumer(
            name=name,
            settings=self.settings,
            topics=topics,
            decoder=decoder,
            topic_decoders=topic_decoders,
            handler=handler,
            batch_handler=batch_handler,
            producer=self.producer,
            metrics=self.messaging_metrics,
            max_records=max_records,
            background=background,
        )
        self._consumers.append(consumer)
        return consumer

    @property
    def readiness(self) -> dict[str, ReadinessCheck]:
        """Checks that the database and the broker answer, and that every consumer has joined its group."""
        return {"database": self.check_database, "kafka": self.check_kafka, "consumers": self.check_consumers}

    async def check_consumers(self) -> None:
        """Raise unless every consumer made by this runtime has been given its partitions."""
        for consumer in self._consumers:
            await consumer.check_joined()

    async def check_database(self) -> None:
        """Raise unless PostgreSQL answers."""
        await self.pool.fetchval("SELECT 1")

    async def check_kafka(self) -> None:
        """Raise unless the broker answers."""
        await self.producer.client.fetch_all_metadata()

    async def close(self) -> None:
        """Release the producer and the pool."""
        try:
            await self.producer.stop()
        finally:
            await self.pool.close()


class OutboxRelay(LoopService):
    """Re-publishes outbox rows left unsent by a crash or a broker outage, looking only when one may be due.

    A row outlives the grace without a crash only when its publish failed, and the publisher says so: the relay
    then looks after ``interval_seconds`` (as it does to forget the rows its process published), and sleeps
    until the oldest row is past the grace. Rows that a process which died left behind are found by a look at
    least every ``fallback_seconds``: such a row is relayed at most that long (or the grace, if longer) after it
    was committed. After a failed pass (the broker away) it looks again after ``interval_seconds``.
    """

    def __init__(self, outbox: OutboxPublisher, interval_seconds: float, fallback_seconds: float) -> None:
        super().__init__("outbox-relay", interval_seconds, fallback_seconds=fallback_seconds)
        self._outbox = outbox
        outbox.on_rows_left(lambda: self.wake_in(self.interval_seconds))

    async def run_once(self) -> None:
        """Forget what was published, relay every row past the grace, and note when the oldest one left is due."""
        await self._outbox.remove_sent()
        if self._outbox.forgetting:  # the delete failed: try again soon
            self.due_in(self.interval_seconds)
        due = await self._outbox.seconds_until_due()
        if due is not None and due <= 0:
            await self._outbox.measure_backlog()
            while await self._outbox.relay_once():
                pass
            due = await self._outbox.seconds_until_due()
        if due is not None:  # one past the grace still is held by another relay: look again soon
            self.due_in(due if due > 0 else self.interval_seconds)


class Runnable:
    """Something a service runs concurrently until shutdown: a consumer or a loop."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], Any]) -> None:
        self.run = run
        self.stop = stop


def freeze_startup_heap() -> None:
    """Leave the objects made so far (modules, settings, clients, pools) out of every later garbage collection.

    Batches of messages and rows live through database round trips, long enough to reach the oldest generation
    and set off full collections, which would otherwise scan the whole start-up heap each time.
    """
    gc.freeze()


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run a background service's main coroutine to its end on uvloop's event loop, as uvicorn runs the api.

    The services spend their time in asyncpg, aiokafka and sockets, where uvloop's loop costs about a tenth
    less CPU per execution than asyncio's own (measured with ``make bench``).
    """
    uvloop.run(main)


async def serve(
    name: str,
    runtime: Runtime,
    runnables: list[Runnable],
    *,
    http_port: int,
    extra_checks: Mapping[str, ReadinessCheck] | None = None,
) -> None:
    """Run ``runnables`` and the ops HTTP endpoint until SIGTERM/SIGINT, then stop them all in order."""
    freeze_startup_heap()
    stop = stop_on_signals()
    checks = {**runtime.readiness, **(extra_checks or {})}
    server = http_server(create_ops_app(name, checks, runtime.registry), runtime.settings.http_host, http_port)
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(runnable.run(), name=f"{name}-{index}") for index, runnable in enumerate(runnables)
    ]
    server_task = asyncio.create_task(server.serve(), name=f"{name}-http")
    logger.info("%s started (http on %s:%d)", name, runtime.settings.http_host, http_port)
    stop_task = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stop_task, server_task, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if stop_task not in done:
        for task in done:
            if task.exception() is not None:
                logger.error("%s: a component stopped unexpectedly", name, exc_info=task.exception())
    logger.info("%s stopping", name)
    for runnable in runnables:
        result = runnable.stop()
        if asyncio.iscoroutine(result):
            await result
    await asyncio.wait(tasks, timeout=10)
    for task in tasks:
        task.cancel()
    server.should_exit = True
    await asyncio.gather(server_task, *tasks, return_exceptions=True)
    stop_task.cancel()
