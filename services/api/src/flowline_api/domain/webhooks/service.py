"""Webhook use cases: create (the secret shown once), read, list, change, delete, rotate, test; deliveries and retries.

The scheduler sends the deliveries (flowline_scheduler.webhooks); the api only stores what is to be sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from cryptography.fernet import MultiFernet
from flowline.db.audit import Actor, field_changes, record_audit
from flowline.db.webhooks import (
    create_webhook,
    delete_webhook,
    insert_test_delivery,
    list_deliveries,
    list_webhooks,
    read_webhook,
    retry_delivery,
    set_deliveries_due,
    update_webhook,
)
from flowline.domain.agents import seal_secret
from flowline.domain.webhooks import TEST_EVENT, body, new_secret
from flowline.errors import ClientError
from flowline.runtime.outbound import OutboundPolicy
from flowline.settings import Settings
from flowline_schemas.pagination import Page
from flowline_schemas.webhooks import DeliveryStatus, Webhook, WebhookDelivery, WebhookWithSecret
from litestar.datastructures import State
from litestar.di import NamedDependency

from flowline_api.domain.agents.service import check_url
from flowline_api.domain.webhooks.schemas import WebhookCreate, WebhookUpdate
from flowline_api.pagination import decode_cursor, encode_cursor

ENTITY_TYPE = "webhook"
# A receiver knows a delivery is Flowline's by its signature, not by credentials in the URL.
CREDENTIALS_ADVICE = "the receiver verifies the webhook-signature header with the webhook's secret instead"
SECRET_FIELDS = frozenset({"secret"})


def to_webhook(record: Mapping[str, Any]) -> Webhook:
    """The response body of a ``webhooks`` row, without its secrets."""
    return Webhook(
        id=str(record["id"]),
        url=record["url"],
        events=list(record["events"]),
        workflows=None if record["workflows"] is None else list(record["workflows"]),
        description=record["description"],
        enabled=record["enabled"],
        disabled_reason=record["disabled_reason"],
        previous_secret_expires_at=record["previous_secret_expires_at"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


def with_secret(record: Mapping[str, Any], secret: str) -> WebhookWithSecret:
    """The response body of a webhook just made or rotated, showing its secret this once."""
    return WebhookWithSecret(**msgspec.structs.asdict(to_webhook(record)), secret=secret)


def to_delivery(record: Mapping[str, Any]) -> WebhookDelivery:
    """The response body of a ``webhook_deliveries`` row."""
    return WebhookDelivery(
        id=str(record["id"]),
        event=record["event_type"],
        execution_id=None if record["execution_id"] is None else str(record["execution_id"]),
        status=record["status"],
        attempts=record["attempts"],
        last_status_code=record["last_status_code"],
        last_error=record["last_error"],
        next_attempt_at=record["next_attempt_at"] if record["status"] == "pending" else None,
        created_at=record["created_at"],
        delivered_at=record["delivered_at"],
    )


def audit_snapshot(record: Mapping[str, Any]) -> dict[str, Any]:
    """The audited fields of a webhook, named as in the API; ``secret`` shows only as a mask."""
    return {
        "url": record["url"],
        "events": list(record["events"]),
        "workflows": None if record["workflows"] is None else list(record["workflows"]),
        "description": record["description"],
        "enabled": record["enabled"],
        "secret": record["secret_sealed"],
    }


def _keyset(cursor: str | None, offset: int) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    if offset:
        raise ClientError("give either offset or cursor, not both")
    try:
        created_at, row_id = decode_cursor(cursor, 2)
        return datetime.fromisoformat(str(created_at)), uuid.UUID(str(row_id))
    except ValueError as err:
        raise ClientError("cursor: not a cursor returned by this list") from err


def _next_cursor(records: list[asyncpg.Record], limit: int) -> str | None:
    if len(records) <= limit or not records[:limit]:
        return None
    last = records[limit - 1]
    return encode_cursor([last["created_at"].isoformat(), str(last["id"])])


class WebhookService:
    """Stores webhooks with sealed secrets, and their deliveries' log."""

    def __init__(self, pool: asyncpg.Pool, cipher: MultiFernet, outbound: OutboundPolicy, settings: Settings) -> None:
        self._pool = pool
        self._cipher = cipher
        self._outbound = outbound
        self._settings = settings

    async def _audit(
        self,
        connection: asyncpg.Connection,
        tenant_id: uuid.UUID,
        webhook_id: Any,
        action: str,
        actor: Actor,
        changes: dict[str, Any],
    ) -> None:
        await record_audit(
            connection,
            tenant_id=tenant_id,
            entity_type=ENTITY_TYPE,
            entity_id=str(webhook_id),
            action=action,
            actor=actor,
            changes=changes,
        )

    async def create(self, tenant_id: uuid.UUID, data: WebhookCreate, actor: Actor) -> WebhookWithSecret:
        """Store a webhook with a new secret, which the answer shows this once.

        Raises:
            ValidationFailed: a URL that is not http(s), holds credentials, or reaches a refused address.
        """
        check_url(data.url, self._outbound, credentials_advice=CREDENTIALS_ADVICE)
        secret = new_secret()
        values = {
            "url": data.url,
            "events": sorted(set(data.events)),
            "workflows": None if data.workflows is None else sorted(set(data.workflows)),
            "description": data.description,
            "enabled": data.enabled,
            "secret_sealed": seal_secret(self._cipher, secret),
        }
        async with self._pool.acquire() as connection, connection.transaction():
            record = await create_webhook(connection, tenant_id, values)
            changes = field_changes(None, audit_snapshot(record), secret_fields=SECRET_FIELDS)
            await self._audit(connection, tenant_id, record["id"], "create", actor, changes)
        return with_secret(record, secret)

    async def read(self, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> Webhook:
        """One webhook.

        Raises:
            NotFound: no such webhook in this tenant.
        """
        return to_webhook(await read_webhook(self._pool, tenant_id, webhook_id))

    async def list(self, tenant_id: uuid.UUID, *, limit: int, offset: int, cursor: str | None) -> Page[Webhook]:
        """One page of the tenant's webhooks, oldest first.

        Raises:
            ClientError: a cursor this list did not write, or a cursor together with an offset.
        """
        after = _keyset(cursor, offset)
        total, records = await list_webhooks(self._pool, tenant_id, limit=limit, offset=offset, after=after)
        items = [to_webhook(record) for record in records[:limit]]
        return Page(items=items, total=total, limit=limit, offset=offset, next_cursor=_next_cursor(records, limit))

    async def update(self, tenant_id: uuid.UUID, webhook_id: uuid.UUID, data: WebhookUpdate, actor: Actor) -> Webhook:
        """Change the fields given; enabling a disabled webhook clears its ``disabledReason`` and failure clock.

        Raises:
            NotFound: no such webhook in this tenant.
            ValidationFailed: a bad URL.
        """
        if data.url is not msgspec.UNSET:
            check_url(data.url, self._outbound, credentials_advice=CREDENTIALS_ADVICE)
        given = {name: value for name, value in msgspec.structs.asdict(data).items() if value is not msgspec.UNSET}
        for name in ("events", "workflows"):
            if given.get(name) is not None:
                given[name] = sorted(set(given[name]))
        async with self._pool.acquire() as connection, connection.transaction():
            current = await read_webhook(connection, tenant_id, webhook_id, lock=True)
            changes = field_changes(audit_snapshot(current), {**audit_snapshot(current), **given})
            if not changes:
                return to_webhook(current)
            if given.get("enabled") and not current["enabled"]:
                given |= {"disabled_reason": None, "failing_since": None}
            record = await update_webhook(connection, tenant_id, webhook_id, given)
            if record["enabled"] != current["enabled"]:
                await set_deliveries_due(connection, webhook_id, due=record["enabled"])
            await self._audit(connection, tenant_id, webhook_id, "update", actor, changes)
        return to_webhook(record)

    async def delete(self, tenant_id: uuid.UUID, webhook_id: uuid.UUID, actor: Actor) -> None:
        """Delete a webhook and its deliveries (those not sent yet are not sent).

        Raises:
            NotFound: no such webhook in this tenant.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            record = await delete_webhook(connection, tenant_id, webhook_id)
            changes = field_changes(audit_snapshot(record), None, secret_fields=SECRET_FIELDS)
            await self._audit(connection, tenant_id, webhook_id, "delete", actor, changes)

    async def rotate_secret(self, tenant_id: uuid.UUID, webhook_id: uuid.UUID, actor: Actor) -> WebhookWithSecret:
        """Give the webhook a new secret (shown this once); the old one still signs beside it for a while.

        Raises:
            NotFound: no such webhook in this tenant.
        """
        secret = new_secret()
        expires_at = datetime.now(UTC) + timedelta(seconds=self._settings.webhook_secret_rotation_seconds)
        async with self._pool.acquire() as connection, connection.transaction():
            current = await read_webhook(connection, tenant_id, webhook_id, lock=True)
            record = await update_webhook(
                connection,
                tenant_id,
                webhook_id,
                {
                    "secret_sealed": seal_secret(self._cipher, secret),
                    "previous_secret_sealed": current["secret_sealed"],
                    "previous_secret_expires_at": expires_at,
                },
            )
            changes = {"secret": {"before": "***", "after": "***"}, "previousSecretExpiresAt": {"after": expires_at}}
            await self._audit(connection, tenant_id, webhook_id, "rotate_secret", actor, msgspec.to_builtins(changes))
        return with_secret(record, secret)

    async def test(self, tenant_id: uuid.UUID, webhook_id: uuid.UUID) -> WebhookDelivery:
        """Queue a ``webhook.test`` delivery, sent like any other (a disabled webhook's waits until it is enabled).

        Raises:
            NotFound: no such webhook in this tenant.
        """
        async with self._pool.acquire() as connection:
            webhook = await read_webhook(connection, tenant_id, webhook_id)
            payload = body(
                TEST_EVENT,
                datetime.now(UTC),
                {"webhookId": str(webhook_id), "message": "a test delivery from Flowline"},
            )
            record = await insert_test_delivery(connection, webhook, payload, TEST_EVENT)
        return to_delivery(record)

    async def deliveries(
        self,
        tenant_id: uuid.UUID,
        webhook_id: uuid.UUID,
        *,
        status: DeliveryStatus | None,
        limit: int,
        offset: int,
        cursor: str | None,
    ) -> Page[WebhookDelivery]:
        """One page of a webhook's deliveries, newest first.

        Raises:
            NotFound: no such webhook in this tenant.
            ClientError: a cursor this list did not write, or a cursor together with an offset.
        """
        before = _keyset(cursor, offset)
        async with self._pool.acquire() as connection:
            await read_webhook(connection, tenant_id, webhook_id)
            total, records = await list_deliveries(
                connection, webhook_id, status=status, limit=limit, offset=offset, before=before
            )
        items = [to_delivery(record) for record in records[:limit]]
        return Page(items=items, total=total, limit=limit, offset=offset, next_cursor=_next_cursor(records, limit))

    async def retry(
        self, tenant_id: uuid.UUID, webhook_id: uuid.UUID, delivery_id: uuid.UUID, actor: Actor
    ) -> WebhookDelivery:
        """Send a delivery again now, whatever its status; audited on the webhook.

        Raises:
            NotFound: no such webhook in this tenant, or no such delivery of it.
        """
        async with self._pool.acquire() as connection, connection.transaction():
            await read_webhook(connection, tenant_id, webhook_id)
            record = await retry_delivery(connection, webhook_id, delivery_id)
            changes = {"delivery": {"after": str(delivery_id)}}
            await self._audit(connection, tenant_id, webhook_id, "retry_delivery", actor, changes)
        return to_delivery(record)


def provide_webhook_service(
    pool: NamedDependency[asyncpg.Pool], settings: NamedDependency[Settings], state: State
) -> WebhookService:
    """A webhook service for this request, sealing secrets with the app's cipher."""
    cipher: MultiFernet = state.auth_cipher
    outbound: OutboundPolicy = state.outbound
    return WebhookService(pool, cipher, outbound, settings)
