"""Deriving webhook deliveries from the events topic: one row per webhook and state event, whatever redelivers it.

The scheduler follows ``flowline.events`` in a group of its own. Each batch's events that an enabled webhook of
their tenant wants become delivery rows in one statement, keyed by (webhook, execution, sequence), and the
offsets are committed only after it: a crash or a redelivery inserts nothing twice, and nothing committed is
skipped. The executor's transactions gain nothing: the events reach the topic through their outbox anyway.

Most batches are of tenants without an enabled webhook: ``WebhookTenants`` knows which tenants have one, while
PostgreSQL notifies every change to that (``flowline.runtime.wakeups``), so those batches read nothing. An event
that reaches the scheduler before the notification of its tenant's new webhook is recorded by the sweep.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from flowline.db.notifications import WEBHOOKS
from flowline.db.webhooks import (
    EnabledWebhook,
    EventSubject,
    NewDelivery,
    enabled_webhooks,
    insert_deliveries,
    list_event_subjects,
    list_webhook_tenants,
)
from flowline.domain.webhooks import event_body, wants
from flowline.messages import EventMessage, ExecutionEvent
from flowline.runtime.wakeups import Wakeups


class WebhookTenants:
    """Which tenants have an enabled webhook, remembered while every change to that is heard.

    Forgotten on each notification of ``webhooks`` and whenever listening starts or stops; while not listening,
    every tenant may have one (the caller reads their webhooks, as without this).
    """

    def __init__(self, wakeups: Wakeups) -> None:
        self._wakeups = wakeups
        self._tenants: frozenset[uuid.UUID] | None = None
        self._changes = 0  # notifications so far: a list read while one came may be out of date
        wakeups.subscribe(WEBHOOKS, self.forget)

    def forget(self) -> None:
        """A webhook changed, or listening started or stopped: read the tenants again next time."""
        self._tenants = None
        self._changes += 1

    async def having_webhooks(self, pool: asyncpg.Pool, tenant_ids: set[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``tenant_ids`` that may have an enabled webhook."""
        if not self._wakeups.listening:
            return tenant_ids
        if self._tenants is None:
            changes = self._changes
            tenants = await list_webhook_tenants(pool)
            if changes != self._changes or not self._wakeups.listening:
                return tenant_ids
            self._tenants = tenants
        return tenant_ids & self._tenants


class DeliveryRecorder:
    """The events consumer's batch handler: records the deliveries a batch of events calls for."""

    def __init__(self, pool: asyncpg.Pool, on_new: Callable[[], None], tenants: WebhookTenants | None = None) -> None:
        self._pool = pool
        self._on_new = on_new
        self._tenants = tenants

    async def handle_events(self, messages: list[EventMessage]) -> None:
        """Insert the deliveries of ``messages`` (state events of executions; others are not for webhooks)."""
        events = [message for message in messages if isinstance(message, ExecutionEvent)]
        if not events:
            return
        tenant_ids = {event.tenant_id for event in events}
        if self._tenants is not None:
            tenant_ids = await self._tenants.having_webhooks(self._pool, tenant_ids)
            if not tenant_ids:
                return
        async with self._pool.acquire() as connection:
            webhooks = await enabled_webhooks(connection, list(tenant_ids))
            subscribed = {event_type for webhook in webhooks for event_type in webhook.events}
            wanted = [event for event in events if event.event in subscribed]
            if not wanted:
                return
            executions = await list_event_subjects(connection, list({event.execution_id for event in wanted}))
            rows = deliveries_for(wanted, webhooks, executions)
            inserted = await insert_deliveries(connection, rows)
        if inserted:
            self._on_new()


def deliveries_for(
    events: Sequence[ExecutionEvent],
    webhooks: Sequence[EnabledWebhook],
    executions: dict[uuid.UUID, EventSubject],
) -> list[NewDelivery]:
    """One delivery per event and webhook of its tenant that wants it (its event type and workflow).

    A webhook hears of the events that occurred once it existed: whichever path derives them (the topic, or the
    sweep later) finds the same deliveries.
    """
    by_tenant: dict[uuid.UUID, list[EnabledWebhook]] = {}
    for webhook in webhooks:
        by_tenant.setdefault(webhook.tenant_id, []).append(webhook)
    rows = []
    for event in events:
        execution = executions.get(event.execution_id)
        if execution is None:  # deleted with its tenant since
            continue
        payload: dict[str, Any] | None = None
        for webhook in by_tenant.get(event.tenant_id, ()):
            if event.occurred_at < webhook.created_at or not wants(
                webhook.events, webhook.workflows, event.event, execution.workflow_ref
            ):
                continue
            payload = payload or event_body(event, execution)
            rows.append(
                NewDelivery(
                    webhook_id=webhook.id,
                    tenant_id=event.tenant_id,
                    event_type=event.event,
                    execution_id=event.execution_id,
                    sequence=event.sequence,
                    payload=payload,
                    event_at=event.occurred_at,
                )
            )
    return rows
