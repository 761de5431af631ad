"""Response bodies of the webhook routes: webhooks (their secret only when made), deliveries and their status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

DeliveryStatus = Literal["pending", "succeeded", "failed"]
WEBHOOK_ID_EXAMPLE = "0193a5b0-1c00-7000-8000-5e6f7a8b9c0d"


class Webhook(msgspec.Struct, kw_only=True, rename="camel"):
    """A webhook: where which state events are sent; its secret is never shown again after it was made."""

    id: Annotated[str, msgspec.Meta(examples=[WEBHOOK_ID_EXAMPLE])]
    url: Annotated[str, msgspec.Meta(examples=["https://hooks.example.com/flowline"])]
    events: Annotated[list[str], msgspec.Meta(examples=[["WORKFLOW_FAILED", "WORKFLOW_COMPLETED"]])]
    workflows: Annotated[
        list[str] | None, msgspec.Meta(description="only executions of these workflows; null: every workflow")
    ]
    description: str | None
    enabled: bool
    disabled_reason: Annotated[
        str | None, msgspec.Meta(description="why it was disabled automatically (cleared when enabled again)")
    ]
    previous_secret_expires_at: Annotated[
        datetime | None, msgspec.Meta(description="until when the secret replaced by the last rotation still signs")
    ]
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(Webhook, kw_only=True, rename="camel"):
    """A webhook just made, or whose secret was just rotated: the only answers that show ``secret``."""

    secret: Annotated[
        str,
        msgspec.Meta(
            description="`whsec_` and the base64 of 24 random bytes: verify deliveries with it (Standard Webhooks)",
            examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        ),
    ]


class WebhookDelivery(msgspec.Struct, kw_only=True, rename="camel"):
    """One event sent (or to be sent) to one webhook; ``id`` is its ``webhook-id`` header on every attempt."""

    id: str
    event: Annotated[str, msgspec.Meta(examples=["WORKFLOW_FAILED"])]
    execution_id: Annotated[str | None, msgspec.Meta(description="null for a webhook.test")]
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Annotated[datetime | None, msgspec.Meta(description="when it is tried next, while pending")]
    created_at: datetime
    delivered_at: datetime | None
