"""Deriving webhook deliveries from the events topic: one row per webhook and state event, whatever redelivers it.

The scheduler follows ``flowline.events`` in a group of its own. Each batch's events that an enabled webhook of
their tenant wants become delivery rows in one statement, keyed by (webhook, execution, sequence), and the
offsets are committed only after it: a crash or a redelivery inserts nothing twice, and nothing committed is
skipped. The executor's transactions gain nothing: the events reach the topic through their outbox anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from flowline.db.webhooks import (
    EnabledWebhook,
    EventSubject,
    NewDelivery,
    enabled_webhooks,
    insert_deliveries,
    list_event_subjects,
)
from flowline.domain.webhooks import event_body, wants
from flowline.messages import EventMessage, ExecutionEvent


class DeliveryRecorder:
    """The events consumer's batch handler: records the deliveries a batch of events calls for."""

    def __init__(self, pool: asyncpg.Pool, on_new: Callable[[], None]) -> None:
        self._pool = pool
        self._on_new = on_new

    async def handle_events(self, messages: list[EventMessage]) -> None:
        """Insert the deliveries of ``messages`` (state events of executions; others are not for webhooks)."""
        events = [message for message in messages if isinstance(message, ExecutionEvent)]
        if not events:
            return
        async with self._pool.acquire() as connection:
            webhooks = await enabled_webhooks(connection, list({event.tenant_id for event in events}))
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
