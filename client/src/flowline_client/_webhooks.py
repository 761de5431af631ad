"""The client's webhook routes, kept apart from ``_async.py``: ``AsyncFlowlineClient`` inherits them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from flowline_schemas.pagination import Page
from flowline_schemas.webhooks import Webhook, WebhookDelivery, WebhookWithSecret

from flowline_client._requests import without_none
from flowline_client._transport import Transport


class WebhookRoutes(Transport):
    """``/webhooks``: where state events are sent, signed, and the log of their deliveries."""

    async def list_webhooks(self, *, limit: int = 20, offset: int = 0, cursor: str | None = None) -> Page[Webhook]:
        """One page of webhooks, oldest first."""
        params = without_none({"limit": limit, "offset": offset, "cursor": cursor})
        return await self._call("GET", "/webhooks", Page[Webhook], params=params)

    def iter_webhooks(self) -> AsyncIterator[Webhook]:
        """Every webhook, page after page."""
        return self._pages(lambda cursor: WebhookRoutes.list_webhooks(self, limit=100, cursor=cursor))

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook (never its secret)."""
        return await self._call("GET", f"/webhooks/{webhook_id}", Webhook)

    async def create_webhook(
        self,
        url: str,
        *,
        events: Sequence[str] | None = None,
        workflows: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool = True,
    ) -> WebhookWithSecret:
        """Create a webhook; the answer's ``secret`` is shown this once."""
        body: dict[str, Any] = {"url": url, "enabled": enabled}
        body |= without_none(
            {
                "events": None if events is None else list(events),
                "workflows": None if workflows is None else list(workflows),
                "description": description,
            }
        )
        return await self._call("POST", "/webhooks", WebhookWithSecret, body=body)

    async def update_webhook(self, webhook_id: str, changes: Mapping[str, Any]) -> Webhook:
        """Change some fields (a merge patch: null clears ``workflows`` or ``description``)."""
        return await self._call("PATCH", f"/webhooks/{webhook_id}", Webhook, body=dict(changes))

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook and its delivery log."""
        await self._send("DELETE", f"/webhooks/{webhook_id}")

    async def rotate_webhook_secret(self, webhook_id: str) -> WebhookWithSecret:
        """A new secret, shown this once; the previous one signs beside it until ``previousSecretExpiresAt``."""
        return await self._call("POST", f"/webhooks/{webhook_id}/rotate-secret", WebhookWithSecret)

    async def test_webhook(self, webhook_id: str) -> WebhookDelivery:
        """Queue a ``webhook.test`` delivery."""
        return await self._call("POST", f"/webhooks/{webhook_id}/test", WebhookDelivery)

    async def list_webhook_deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[WebhookDelivery]:
        """One page of a webhook's deliveries, newest first (``status``: pending, succeeded or failed)."""
        params = without_none({"status": status, "limit": limit, "offset": offset, "cursor": cursor})
        return await self._call("GET", f"/webhooks/{webhook_id}/deliveries", Page[WebhookDelivery], params=params)

    def iter_webhook_deliveries(self, webhook_id: str, *, status: str | None = None) -> AsyncIterator[WebhookDelivery]:
        """Every delivery of a webhook, newest first, page after page."""
        return self._pages(
            lambda cursor: WebhookRoutes.list_webhook_deliveries(
                self, webhook_id, status=status, limit=100, cursor=cursor
            )
        )

    async def retry_webhook_delivery(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """Send a delivery again now."""
        return await self._call("POST", f"/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", WebhookDelivery)
