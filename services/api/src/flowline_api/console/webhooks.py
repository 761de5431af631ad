"""The console's webhooks: the tenant's webhooks, one webhook's delivery log, and a retry of a failed delivery.

The pages read through the API's webhook service under the API's role for webhooks (operator: a webhook's URL
and its deliveries are no viewer's to read). A retry is the service's own call, audited as the API's is; done, it
comes back to the delivery log saying so; refused, the log comes back with the API's message.
"""

from __future__ import annotations

import uuid
from typing import Any, Final, get_args
from urllib.parse import urlencode

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline.errors import ClientError, FlowlineError
from flowline_schemas.webhooks import DeliveryStatus
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.response import Redirect, Template

from flowline_api.auth import OPERATOR
from flowline_api.console.schedules import query_id
from flowline_api.console.views import page_context
from flowline_api.domain.webhooks.service import WebhookService, provide_webhook_service
from flowline_api.path_ids import DeliveryId, WebhookId

PAGE_SIZE: Final = 50
DELIVERY_STATUSES: Final[tuple[str, ...]] = get_args(DeliveryStatus)


def delivery_status(query: Any) -> DeliveryStatus | None:
    """The delivery log's ``status`` filter (None: every status).

    Raises:
        ClientError: not a delivery status.
    """
    value = query.get("status") or None
    if value is not None and value not in DELIVERY_STATUSES:
        raise ClientError(f"status: {value!r} is not a delivery status; use one of {', '.join(DELIVERY_STATUSES)}")
    return value


async def delivery_log(
    service: WebhookService, tenant_id: uuid.UUID, webhook_id: uuid.UUID, caller: Principal, query: Any, **shown: Any
) -> dict[str, Any]:
    """A webhook and one page of its deliveries (newest first), as the query string filters and pages them.

    Raises:
        NotFound: no such webhook in this tenant.
        ClientError: a bad ``status``, ``cursor`` or ``retried``.
    """
    webhook = await service.read(tenant_id, webhook_id)
    status = delivery_status(query)
    page = await service.deliveries(
        tenant_id, webhook_id, status=status, limit=PAGE_SIZE, offset=0, cursor=query.get("cursor") or None
    )
    kept = [("status", status)] if status else []
    next_url = "?" + urlencode([*kept, ("cursor", page.next_cursor)]) if page.next_cursor else None
    context = page_context(
        caller,
        webhook=webhook,
        page=page,
        status=status,
        statuses=DELIVERY_STATUSES,
        next_url=next_url,
        retried=query_id(query, "retried"),
        error=None,
    )
    context.update(shown)
    return context


class ConsoleWebhookController(Controller):
    """``/ui/webhooks``, ``/ui/webhooks/{id}`` and the retry of a delivery."""

    path = "/webhooks"
    dependencies = {"webhook_service": Provide(provide_webhook_service, sync_to_thread=False)}

    @get("/", opt=OPERATOR, name="console:webhooks")
    async def list_page(
        self,
        request: Request[Principal, Any, State],
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        webhook_service: NamedDependency[WebhookService],
    ) -> Template:
        """The tenant's webhooks, oldest first, a page at a time: where they send, what, and whether they do."""
        cursor = request.query_params.get("cursor") or None
        page = await webhook_service.list(tenant_id, limit=PAGE_SIZE, offset=0, cursor=cursor)
        next_url = "?" + urlencode([("cursor", page.next_cursor)]) if page.next_cursor else None
        return Template("webhooks.html", context=page_context(caller, page=page, next_url=next_url))

    @get("/{webhook_id:str}", opt=OPERATOR, name="console:webhook")
    async def webhook_page(
        self,
        request: Request[Principal, Any, State],
        webhook_id: WebhookId,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        webhook_service: NamedDependency[WebhookService],
    ) -> Template:
        """The webhook's settings and its delivery log, filtered by status (``?status=failed``)."""
        context = await delivery_log(webhook_service, tenant_id, webhook_id, caller, request.query_params)
        return Template("webhook.html", context=context)

    @post("/{webhook_id:str}/deliveries/{delivery_id:str}/retry", opt=OPERATOR, name="console:delivery-retry")
    async def retry(
        self,
        webhook_id: WebhookId,
        delivery_id: DeliveryId,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        webhook_service: NamedDependency[WebhookService],
    ) -> Redirect | Template:
        """Make the delivery due now (one more attempt); back to the log, which says so, or shows the refusal."""
        try:
            await webhook_service.retry(tenant_id, webhook_id, delivery_id, actor)
        except FlowlineError as error:
            if not isinstance(error, ClientError):
                raise
            context = await delivery_log(webhook_service, tenant_id, webhook_id, caller, {}, error=error.detail)
            return Template("webhook.html", context=context, status_code=error.status_code)
        return Redirect(f"/ui/webhooks/{webhook_id}?{urlencode({'retried': delivery_id})}", status_code=303)
