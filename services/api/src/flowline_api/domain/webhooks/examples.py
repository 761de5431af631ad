"""OpenAPI examples of the webhook routes."""

from __future__ import annotations

from typing import Any

from flowline_schemas.webhooks import WEBHOOK_ID_EXAMPLE

PATH = "/api/v1/tenants/dev/webhooks"
DELIVERY_ID = "0193a5b2-4e00-7000-8000-1a2b3c4d5e6f"
NOT_FOUND = f"webhook {WEBHOOK_ID_EXAMPLE} does not exist"
BAD_URL = ("url: refused: 10.0.0.7 is a private address; allow it with FLOWLINE_OUTBOUND_ALLOWED_NETWORKS", "/url")
BAD_PAGE = "give either offset or cursor, not both"
CREATE_EXAMPLE: dict[str, Any] = {
    "url": "https://hooks.example.com/flowline",
    "events": ["WORKFLOW_FAILED", "TASK_FAILED"],
    "workflows": ["billing.invoice"],
    "description": "page the billing team",
}
WEBHOOK_EXAMPLE: dict[str, Any] = {
    "id": WEBHOOK_ID_EXAMPLE,
    "url": "https://hooks.example.com/flowline",
    "events": ["TASK_FAILED", "WORKFLOW_FAILED"],
    "workflows": ["billing.invoice"],
    "description": "page the billing team",
    "enabled": True,
    "disabledReason": None,
    "previousSecretExpiresAt": None,
    "createdAt": "2026-12-07T16:00:00Z",
    "updatedAt": "2026-12-07T16:00:00Z",
}
CREATED_EXAMPLE: dict[str, Any] = {**WEBHOOK_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
DELIVERY_EXAMPLE: dict[str, Any] = {
    "id": DELIVERY_ID,
    "event": "WORKFLOW_FAILED",
    "executionId": "0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a",
    "status": "pending",
    "attempts": 2,
    "lastStatusCode": 503,
    "lastError": "POST https://hooks.example.com/flowline answered 503",
    "nextAttemptAt": "2026-12-07T16:02:35Z",
    "createdAt": "2026-12-07T16:02:00Z",
    "deliveredAt": None,
}
