"""Sending webhook deliveries: claim what is due, POST it signed, and record the attempt; retried with backoff.

docs/architecture.md §2.3. A claim (``FOR UPDATE SKIP LOCKED``) moves the delivery's due time a lease ahead
and commits before the request goes out, so schedulers share the work, no connection is held while a receiver
thinks, and a delivery whose attempt was never recorded (the process died) is sent again when the lease ends:
at least once. The receiver tells deliveries apart by ``webhook-id``, the same on every attempt.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Generic, TypeVar

import asyncpg
import msgspec
from cryptography.fernet import MultiFernet
from flowline.db.notifications import WEBHOOK_DELIVERIES, WEBHOOKS
from flowline.db.webhooks import (
    ClaimedDelivery,
    FailedAttempt,
    FailureRecorded,
    claim_due_deliveries,
    delete_settled_deliveries,
    read_next_delivery_due,
    record_failures,
    record_successes,
)
from flowline.domain.agents import AuthConfigUnreadable, open_secret
from flowline.domain.webhooks import parse_retry_schedule, signature_headers
from flowline.runtime.loops import LoopService
from flowline.runtime.outbound import OutboundPolicy
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Settings

from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.webhook_client import Outcome, WebhookClient

logger = logging.getLogger(__name__)
AttemptT = TypeVar("AttemptT")
WrittenT = TypeVar("WrittenT")

RETENTION_BATCH = 5000
# A claimed attempt's outcome is awaited this long past its timeout before the delivery is due again.
LEASE_MARGIN_SECONDS = 30.0
# Finished attempts wake the loop this much later, together, and only once at most half the room is taken:
# under load one claim then takes many deliveries instead of one each (new deliveries still wake it at once).
FINISHED_WAKE_DELAY_SECONDS = 0.01


def create_webhook_client(settings: Settings) -> WebhookClient:
    """The pooled client of deliveries: the outbound policy checks every address it connects to."""
    return WebhookClient(
        OutboundPolicy.from_setting(settings.outbound_allowed_networks),
        max_connections=settings.webhook_max_concurrent_deliveries,
        timeout=settings.webhook_timeout_seconds,
    )


class BatchedWrites(Generic[AttemptT, WrittenT]):
    """Writes attempts' outcomes in batches: whatever comes while one batch is written goes in the next.

    At low load each outcome is written at once, alone; under load one write settles many. ``write`` answers
    by delivery id; a delivery it leaves out had lost its claim.
    """

    def __init__(self, name: str, write: Callable[[list[AttemptT]], Awaitable[Mapping[uuid.UUID, WrittenT]]]) -> None:
        self._name = name
        self._write_batch = write
        self._waiting: list[tuple[uuid.UUID, AttemptT, asyncio.Future[WrittenT | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, delivery_id: uuid.UUID, attempt: AttemptT) -> WrittenT | None:
        """What writing ``attempt`` of the delivery ``delivery_id`` came to, or None when its claim had been lost."""
        written: asyncio.Future[WrittenT | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery_id, attempt, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name=self._name)
        return await written

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._write_batch([attempt for _, attempt, _ in batch])
            except Exception as err:  # each attempt's task logs it; the lease brings the deliveries back
                for _, _, written in batch:
                    written.set_exception(err)
                continue
            for delivery_id, _, written in batch:
                written.set_result(results.get(delivery_id))


class WebhookDeliveryLoop(LoopService):
    """Keeps up to ``FLOWLINE_WEBHOOK_MAX_CONCURRENT_DELIVERIES`` deliveries in flight.

    At most ``FLOWLINE_WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK`` of them are one webhook's: a receiver that answers
    slowly (or not, until the timeout) holds those, and the other webhooks' deliveries go on meanwhile. Woken by
    new deliveries, by deliveries made due now and by webhooks enabled (``wakeups``), and by its own finished
    attempts; otherwise it sleeps until the next retry is due.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: MultiFernet,
        client: WebhookClient,
        metrics: SchedulerMetrics,
        settings: Settings,
        wakeups: Wakeups | None = None,
    ) -> None:
        super().__init__(
            "webhooks",
            settings.webhook_poll_interval_seconds,
            wakeups=wakeups,
            channels=(WEBHOOK_DELIVERIES, WEBHOOKS) if wakeups else (),
        )
        self._pool = pool
        self._cipher = cipher
        self._client = client
        self._metrics = metrics
        self._timeout = settings.webhook_timeout_seconds
        self._retry_waits = parse_retry_schedule(settings.webhook_retry_schedule_seconds)
        self._disable_after = settings.webhook_disable_after_seconds
        self._capacity = settings.webhook_max_concurrent_deliveries
        self._per_webhook = settings.webhook_max_in_flight_per_webhook
        self._in_flight: set[asyncio.Task[None]] = set()
        self._in_flight_by_webhook: Counter[uuid.UUID] = Counter()
        self._wake_scheduled = False
        self._successes = BatchedWrites[tuple[ClaimedDelivery, int], datetime](
            "webhook-successes", functools.partial(record_successes, pool)
        )
        self._failures = BatchedWrites[FailedAttempt, FailureRecorded]("webhook-failures", self._write_failures)

    async def run_once(self) -> None:
        """Claim due deliveries while there is room, and start sending each; then note when the next is due."""
        while (room := self._capacity - len(self._in_flight)) > 0:
            async with self._pool.acquire() as connection:
                claimed = await claim_due_deliveries(
                    connection,
                    room,
                    self._timeout + LEASE_MARGIN_SECONDS,
                    per_webhook=self._per_webhook,
                    in_flight=self._in_flight_by_webhook,
                )
            for delivery in claimed:
                task = asyncio.create_task(self.deliver(delivery), name=f"webhook-delivery-{delivery.id}")
                self._in_flight.add(task)
                self._in_flight_by_webhook[delivery.webhook_id] += 1
                task.add_done_callback(functools.partial(self._finished, delivery.webhook_id))
            if len(claimed) < room:
                break
        if self._in_flight:
            return  # each finished attempt wakes the loop, the last one with nothing in flight
        due_in = await read_next_delivery_due(self._pool)
        if due_in is not None:  # due but not claimed (behind an earlier event, or held elsewhere): look again soon
            self.due_in(due_in if due_in > 0 else self.interval_seconds)

    def _finished(self, webhook_id: uuid.UUID, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._in_flight_by_webhook[webhook_id] -= 1
        if not self._in_flight_by_webhook[webhook_id]:
            del self._in_flight_by_webhook[webhook_id]
        # The next event of the same execution may be waiting for this one; and there is room again.
        if not self._wake_scheduled and len(self._in_flight) <= self._capacity // 2:
            self._wake_scheduled = True
            asyncio.get_running_loop().call_later(FINISHED_WAKE_DELAY_SECONDS, self._wake_after_finished)

    def _wake_after_finished(self) -> None:
        self._wake_scheduled = False
        self.wake()

    async def drain(self) -> None:
        """Wait for the attempts in flight to be recorded (on shutdown and in tests)."""
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    async def close(self) -> None:
        """Stop claiming, and give the attempts in flight their timeout to finish (the lease covers the rest)."""
        self.stop()
        try:
            async with asyncio.timeout(self._timeout):
                await self.drain()
        except TimeoutError:
            logger.warning("%d webhook deliveries still in flight at shutdown: sent again later", len(self._in_flight))

    async def deliver(self, delivery: ClaimedDelivery) -> None:
        """Send one attempt of ``delivery`` and record its outcome; never raises but for cancellation."""
        try:
            outcome = await self._attempt(delivery)
            await self._record(delivery, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease brings it back: the attempt is lost, not the delivery.
            logger.exception("webhook delivery %s failed unexpectedly; it is tried again later", delivery.id)

    async def _attempt(self, delivery: ClaimedDelivery) -> Outcome:
        try:
            secrets = [open_secret(self._cipher, delivery.secret_sealed, "a webhook secret")]
            if delivery.previous_secret_sealed is not None:
                secrets.append(open_secret(self._cipher, delivery.previous_secret_sealed, "a webhook secret"))
        except AuthConfigUnreadable as err:
            return Outcome(None, err.detail, "refused")
        body = msgspec.json.encode(delivery.payload)
        headers = signature_headers(secrets, str(delivery.id), int(time.time()), body)
        outcome = await self._client.post(delivery.url, body, headers)
        self._metrics.webhook_attempts.labels(outcome.kind).inc()
        return outcome

    async def _record(self, delivery: ClaimedDelivery, outcome: Outcome) -> None:
        if outcome.delivered:
            assert outcome.status_code is not None
            delivered_at = await self._successes.record(delivery.id, (delivery, outcome.status_code))
            if delivered_at is not None:
                self._metrics.webhook_deliveries.labels("succeeded").inc()
                latency = (delivered_at - delivery.event_at).total_seconds()
                self._metrics.webhook_delivery_latency.observe(max(latency, 0.0))
            return
        retry_in = self._retry_waits[delivery.attempts - 1] if delivery.attempts <= len(self._retry_waits) else None
        failed = FailedAttempt(delivery, outcome.status_code, outcome.error or "", retry_in)
        recorded = await self._failures.record(delivery.id, failed)
        if recorded is None:
            return
        self._metrics.webhook_deliveries.labels("retrying" if retry_in is not None else "failed").inc()
        if recorded.disabled_reason is not None:
            self._metrics.webhooks_disabled.inc()
            logger.warning("webhook %s %s", delivery.webhook_id, recorded.disabled_reason)

    async def _write_failures(self, failed: list[FailedAttempt]) -> dict[uuid.UUID, FailureRecorded]:
        async with self._pool.acquire() as connection, connection.transaction():
            return await record_failures(connection, failed, disable_after_seconds=self._disable_after)


class DeliveryRetention(LoopService):
    """Deletes settled deliveries older than ``FLOWLINE_WEBHOOK_DELIVERY_RETENTION_DAYS``, a batch at a time."""

    def __init__(self, pool: asyncpg.Pool, *, retention_seconds: float, interval_seconds: float) -> None:
        super().__init__("webhook-delivery-retention", interval_seconds)
        self._pool = pool
        self._retention_seconds = retention_seconds

    async def run_once(self) -> None:
        """Delete expired deliveries until none is left."""
        while await delete_settled_deliveries(self._pool, self._retention_seconds, RETENTION_BATCH):
            pass
