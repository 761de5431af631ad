"""Routes of webhooks: where state events are sent, signed, and the log of their deliveries."""

from __future__ import annotations

import uuid
from typing import Annotated

from flowline.db.audit import Actor
from flowline_schemas.webhooks import WEBHOOK_ID_EXAMPLE, DeliveryStatus, Webhook, WebhookDelivery, WebhookWithSecret
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import Body, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from flowline_api.auth import OPERATOR
from flowline_api.domain.openapi import NO_TENANT, example_response, page_example, problems
from flowline_api.domain.webhooks.examples import (
    BAD_PAGE,
    BAD_URL,
    CREATE_EXAMPLE,
    CREATED_EXAMPLE,
    DELIVERY_EXAMPLE,
    DELIVERY_ID,
    NOT_FOUND,
    PATH,
    WEBHOOK_EXAMPLE,
)
from flowline_api.domain.webhooks.schemas import WebhookCreate, WebhookUpdate
from flowline_api.domain.webhooks.service import WebhookService, provide_webhook_service
from flowline_api.pagination import Cursor, Limit, Offset, WebhookDeliveryPage, WebhookPage
from flowline_api.path_ids import DeliveryId, WebhookId

ONE = f"{PATH}/{WEBHOOK_ID_EXAMPLE}"
BAD_ID = "webhook_id: Invalid UUID"


class WebhookController(Controller):
    """``/api/v1/tenants/{tenant}/webhooks``: signed HTTP callbacks on state events (admin or operator)."""

    path = "/webhooks"
    tags = ["webhooks"]
    dependencies = {"webhook_service": Provide(provide_webhook_service, sync_to_thread=False)}

    @post(
        "/",
        opt=OPERATOR,
        status_code=HTTP_201_CREATED,
        summary="Create a webhook",
        responses={
            **example_response(WebhookWithSecret, "the webhook, with its secret", CREATED_EXAMPLE, HTTP_201_CREATED),
            **problems(PATH, not_found=NO_TENANT, invalid=BAD_URL),
        },
    )
    async def create_webhook(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        actor: NamedDependency[Actor],
        data: Annotated[
            WebhookCreate, Body(examples=[Example(summary="failures of one workflow", value=CREATE_EXAMPLE)])
        ],
    ) -> WebhookWithSecret:
        """Send `events` (default: how executions end) of `workflows` (default: all) to `url`, signed.

        The answer carries `secret` this once: it is stored encrypted and never shown again (`rotate-secret`
        makes a new one). Deliveries follow Standard Webhooks: `webhook-id`, `webhook-timestamp` and
        `webhook-signature` headers, retried with backoff until the receiver answers 2xx. The URL must be
        http(s) and reach an address the outbound policy allows (422 naming `url` otherwise); it is checked
        again at every delivery.
        """
        return await webhook_service.create(tenant_id, data, actor)

    @get(
        "/",
        opt=OPERATOR,
        summary="List webhooks",
        responses={
            **example_response(WebhookPage, "one page of webhooks", page_example(WEBHOOK_EXAMPLE)),
            **problems(PATH, bad_request=BAD_PAGE, not_found=NO_TENANT),
        },
    )
    async def list_webhooks(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> WebhookPage:
        """The tenant's webhooks, oldest first, one page at a time (`nextCursor` for stable deep pages)."""
        return await webhook_service.list(tenant_id, limit=limit, offset=offset, cursor=cursor)

    @get(
        "/{webhook_id:str}",
        opt=OPERATOR,
        summary="Read a webhook",
        responses={
            **example_response(Webhook, "a webhook", WEBHOOK_EXAMPLE),
            **problems(ONE, bad_request=BAD_ID, not_found=NOT_FOUND),
        },
    )
    async def get_webhook(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        webhook_id: WebhookId,
    ) -> Webhook:
        """One webhook, without its secret; `disabledReason` says why it was disabled automatically."""
        return await webhook_service.read(tenant_id, webhook_id)

    @patch(
        "/{webhook_id:str}",
        opt=OPERATOR,
        summary="Change a webhook",
        responses={
            **example_response(Webhook, "the changed webhook", WEBHOOK_EXAMPLE),
            **problems(ONE, bad_request=BAD_ID, not_found=NOT_FOUND, invalid=BAD_URL),
        },
    )
    async def patch_webhook(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        actor: NamedDependency[Actor],
        webhook_id: WebhookId,
        data: Annotated[WebhookUpdate, Body(examples=[Example(summary="enable it again", value={"enabled": True})])],
    ) -> Webhook:
        """A JSON merge patch of `url`, `events`, `workflows`, `description` and `enabled`.

        Enabling a webhook that was disabled automatically clears `disabledReason`; its pending deliveries go out.
        """
        return await webhook_service.update(tenant_id, webhook_id, data, actor)

    @delete(
        "/{webhook_id:str}",
        opt=OPERATOR,
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a webhook",
        responses=problems(ONE, bad_request=BAD_ID, not_found=NOT_FOUND),
    )
    async def delete_webhook(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        actor: NamedDependency[Actor],
        webhook_id: WebhookId,
    ) -> None:
        """Delete a webhook and its delivery log; deliveries not sent yet are not sent."""
        await webhook_service.delete(tenant_id, webhook_id, actor)

    @post(
        "/{webhook_id:str}/rotate-secret",
        opt=OPERATOR,
        status_code=HTTP_201_CREATED,
        summary="Rotate a webhook's secret",
        responses={
            **example_response(
                WebhookWithSecret, "the webhook, with its new secret", CREATED_EXAMPLE, HTTP_201_CREATED
            ),
            **problems(f"{ONE}/rotate-secret", bad_request=BAD_ID, not_found=NOT_FOUND),
        },
    )
    async def rotate_secret(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        actor: NamedDependency[Actor],
        webhook_id: WebhookId,
    ) -> WebhookWithSecret:
        """Make a new secret, shown this once; the previous one keeps signing beside it for a while.

        The previous secret signs until `previousSecretExpiresAt` (`FLOWLINE_WEBHOOK_SECRET_ROTATION_SECONDS`
        after the rotation), so receivers can switch over without a gap.
        """
        return await webhook_service.rotate_secret(tenant_id, webhook_id, actor)

    @post(
        "/{webhook_id:str}/test",
        opt=OPERATOR,
        status_code=HTTP_202_ACCEPTED,
        summary="Send a test delivery",
        responses={
            **example_response(
                WebhookDelivery,
                "the test delivery, queued",
                {**DELIVERY_EXAMPLE, "event": "webhook.test", "executionId": None, "attempts": 0},
                HTTP_202_ACCEPTED,
            ),
            **problems(f"{ONE}/test", bad_request=BAD_ID, not_found=NOT_FOUND),
        },
    )
    async def test_webhook(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        webhook_id: WebhookId,
    ) -> WebhookDelivery:
        """Queue a `webhook.test` delivery, signed and retried like any other; follow it in the delivery log."""
        return await webhook_service.test(tenant_id, webhook_id)

    @get(
        "/{webhook_id:str}/deliveries",
        opt=OPERATOR,
        summary="List a webhook's deliveries",
        responses={
            **example_response(WebhookDeliveryPage, "one page of deliveries", page_example(DELIVERY_EXAMPLE)),
            **problems(f"{ONE}/deliveries", bad_request=BAD_ID, not_found=NOT_FOUND),
        },
    )
    async def list_deliveries(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        webhook_id: WebhookId,
        status: Annotated[DeliveryStatus | None, QueryParameter(description="only deliveries in this status")] = None,
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> WebhookDeliveryPage:
        """The webhook's deliveries, newest first: attempts, the last status code or error, the next attempt."""
        return await webhook_service.deliveries(
            tenant_id, webhook_id, status=status, limit=limit, offset=offset, cursor=cursor
        )

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/retry",
        opt=OPERATOR,
        status_code=HTTP_202_ACCEPTED,
        summary="Send a delivery again",
        responses={
            **example_response(WebhookDelivery, "the delivery, due now", DELIVERY_EXAMPLE, HTTP_202_ACCEPTED),
            **problems(
                f"{ONE}/deliveries/{DELIVERY_ID}/retry",
                bad_request=BAD_ID,
                not_found=f"delivery {DELIVERY_ID} does not exist",
            ),
        },
    )
    async def retry_delivery(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        webhook_service: NamedDependency[WebhookService],
        actor: NamedDependency[Actor],
        webhook_id: WebhookId,
        delivery_id: DeliveryId,
    ) -> WebhookDelivery:
        """Make a delivery due now, whatever its status: a failed one gets one more attempt. Audited."""
        return await webhook_service.retry(tenant_id, webhook_id, delivery_id, actor)
