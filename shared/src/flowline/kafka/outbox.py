"""The transactional outbox (docs/architecture.md §4.2): rows written with the state change, published after.

A row is deleted once the broker acknowledged it, so every row in the table is one still to be sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import NamedTuple

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from aiokafka.structs import RecordMetadata

from flowline.kafka.parking import Doorbell
from flowline.messages import ExecutionEvent, OperationEvent, TenantMessage, encode
from flowline.runtime.ids import uuid7
from flowline.runtime.metrics import MessagingMetrics
from flowline.runtime.outages import OUTAGE_ERRORS
from flowline.runtime.request_ids import current_request_id, kafka_headers

logger = logging.getLogger(__name__)

# The backlog gauge counts old rows up to this many: the count stays cheap however long the broker was away.
BACKLOG_COUNT_CAP = 100_000


class OutboxRow(NamedTuple):
    """One message waiting in the outbox."""

    id: uuid.UUID
    topic: str
    key: bytes | None
    payload: bytes
    request_id: str | None = None  # sent as the X-Request-ID Kafka header


def outgoing(topic: str, message: TenantMessage | ExecutionEvent | OperationEvent) -> OutboxRow:
    """An outbox row for ``message``, keyed by its execution id so one execution stays on one partition.

    A bulk operation's event is keyed by the operation's id, for the same ordering per operation. The row
    carries the current request id, so the work it causes logs the same one.
    """
    key = message.operation_id if isinstance(message, OperationEvent) else message.execution_id
    return OutboxRow(uuid7(), topic, str(key).encode(), encode(message), current_request_id.get())


async def enqueue(connection: asyncpg.Connection, rows: Sequence[OutboxRow]) -> Sequence[OutboxRow]:
    """Insert ``rows`` inside the caller's transaction; publish them after the commit."""
    if rows:
        await connection.executemany(
            "INSERT INTO outbox (id, topic, key, payload, request_id) VALUES ($1, $2, $3, $4, $5)",
            rows,
        )
    return rows


class OutboxPublisher:
    """Publishes committed outbox rows, and relays the ones a crash or a broker outage left behind."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        metrics: MessagingMetrics,
        *,
        grace_seconds: float = 2.0,
        batch_size: int = 500,
        dead_letter_topic: str,
        doorbell: Doorbell | None = None,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._metrics = metrics
        self._doorbell = doorbell
        self._dead_letter_topic = dead_letter_topic
        self._grace_seconds = grace_seconds
        self._batch_size = batch_size
        self._sent: list[uuid.UUID] = []  # published rows, deleted in batches by ``remove_sent``
        self._on_rows_left: Callable[[], None] | None = None

    def on_rows_left(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever this process leaves rows to its relay.

        That is: published rows to forget (the first since ``remove_sent``), or rows whose publish failed.
        """
        self._on_rows_left = callback

    def _rows_left(self) -> None:
        if self._on_rows_left is not None:
            self._on_rows_left()

    async def _send(self, rows: Sequence[OutboxRow]) -> None:
        """Publish ``rows``; one the broker will never take (too large) goes to the dead-letter topic instead.

        Retrying such a row would fail forever and, in the relay, take every row of its batch down with it.
        """
        sending: list[tuple[OutboxRow, asyncio.Future[RecordMetadata]]] = []
        for row in rows:
            try:
                delivery = await self._producer.send(
                    row.topic, row.payload, key=row.key, headers=kafka_headers(row.request_id)
                )
            except MessageSizeTooLargeError as err:  # refused before it is sent
                await self._refuse(row, err)
                continue
            sending.append((row, delivery))
        outcomes = await asyncio.gather(*(delivery for _, delivery in sending), return_exceptions=True)
        delivered = []
        for (row, _), outcome in zip(sending, outcomes, strict=True):
            if isinstance(outcome, MessageSizeTooLargeError | RecordTooLargeError):
                await self._refuse(row, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                delivered.append(outcome)
        if self._doorbell is not None:
            await self._doorbell.ring_after(delivered)

    async def _refuse(self, row: OutboxRow, err: Exception) -> None:
        """Put a note of a row too large to publish on the dead-letter topic (the row itself cannot go there)."""
        note = {"outboxId": str(row.id), "topic": row.topic, "bytes": len(row.payload), "error": str(err)[:500]}
        headers = [("source-topic", row.topic.encode()), ("error", f"too large to publish: {err}"[:2000].encode())]
        await self._producer.send_and_wait(
            self._dead_letter_topic, json.dumps(note).encode(), key=row.key, headers=headers
        )
        self._metrics.outbox_refused.inc()
        logger.error(
            "outbox row %s (%d bytes, for %s) is too large to publish: dead-lettered",
            row.id,
            len(row.payload),
            row.topic,
        )

    async def publish(self, rows: Sequence[OutboxRow]) -> bool:
        """Publish rows whose transaction has committed; ``remove_sent`` deletes them later, in a batch.

        A failure is logged, not raised: the rows stay and the relay publishes them later.

        Returns:
            Whether the rows were published now.
        """
        if not rows:
            return True
        try:
            await self._send(rows)
        except Exception as err:
            self._metrics.outbox_publish_failures.inc()
            logger.warning("publishing %d outbox rows failed, the relay will retry: %s", len(rows), err)
            self._rows_left()
            return False
        self._metrics.outbox_published.labels("immediate").inc(len(rows))
        if not self._sent:
            self._rows_left()
        self._sent.extend(row.id for row in rows)
        return True

    async def remove_sent(self) -> None:
        """Delete the rows published since the last call, in one statement off the hot path.

        Until then (or if this process dies first) the relay may publish them again: consumers are
        idempotent, and the relay's grace period leaves time for this to run first.
        """
        sent, self._sent = self._sent, []
        if not sent:
            return
        try:
            await self._pool.execute("DELETE FROM outbox WHERE id = ANY($1::uuid[])", sent)
        except OUTAGE_ERRORS as err:
            self._sent.extend(sent)
            logger.warning("removing %d sent outbox rows failed, will retry: %s", len(sent), err)

    @property
    def forgetting(self) -> bool:
        """Whether rows published by this process wait for ``remove_sent``."""
        return bool(self._sent)

    async def seconds_until_due(self) -> float | None:
        """Seconds until the oldest row is past the grace, by PostgreSQL's clock (<= 0: it is); None: no row.

        With none past it, the backlog gauge is 0 and no count is needed.
        """
        seconds: float | None = await self._pool.fetchval(
            "SELECT extract(epoch FROM min(created_at) + make_interval(secs => $1) - clock_timestamp())::float8 "
            "FROM outbox",
            self._grace_seconds,
        )
        if seconds is None or seconds > 0:
            self._metrics.outbox_backlog.set(0)
        return seconds

    async def measure_backlog(self) -> int:
        """Set the backlog gauge to the rows the relay would publish now, counting at most ``BACKLOG_COUNT_CAP``.

        Returns:
            The rows counted.
        """
        backlog: int = await self._pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE created_at < now() - make_interval(secs => $1) "
            "LIMIT $2) AS old",
            self._grace_seconds,
            BACKLOG_COUNT_CAP,
        )
        self._metrics.outbox_backlog.set(backlog)
        return backlog

    async def relay_once(self) -> int:
        """Publish rows older than the grace period, oldest first, and remove them.

        Returns:
            How many rows were published.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            records = await connection.fetch(
                """
                SELECT id, topic, key, payload, request_id FROM outbox
                WHERE created_at < now() - make_interval(secs => $1)
                ORDER BY created_at
                LIMIT $2
                FOR UPDATE SKIP LOCKED
                """,
                self._grace_seconds,
                self._batch_size,
            )
            rows = [OutboxRow(*record) for record in records]
            if rows:
                await self._send(rows)
                await connection.execute("DELETE FROM outbox WHERE id = ANY($1::uuid[])", [row.id for row in rows])
                self._metrics.outbox_published.labels("relay").inc(len(rows))
        return len(rows)
