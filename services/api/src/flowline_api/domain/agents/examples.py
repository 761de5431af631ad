"""OpenAPI examples of the agent routes."""

from __future__ import annotations

from typing import Any

PATH = "/api/v1/tenants/dev/agents"
AGENT_ID = "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"
NOT_FOUND = f"agent {AGENT_ID} does not exist"
BAD_URL = ("url: must be an absolute http or https URL", "/url")
BAD_PAGE = "give either offset or cursor, not both"
TOO_DEEP = ("/authConfig: nested deeper than 64 levels", "/authConfig")  # FLOWLINE_MAX_JSON_DEPTH

AGENT_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "summarizer",
    "description": "Summarizes incident timelines",
    "url": "https://agents.example.com/summarize",
    "healthPath": "/health",
    "authType": "bearer",
    "authConfig": {"token": "s3cr3t-token"},
    "timeoutMs": 30000,
    "retryConfig": {"maxAttempts": 3, "backoff": "exponential", "initialIntervalMs": 1000, "maxIntervalMs": 60000},
    "status": "active",
}
AGENT_HMAC_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "billing",
    "url": "https://billing.internal/flowline",
    "authType": "hmac",
    "authConfig": {"secret": "hmac-shared-secret"},
}
TOKEN_ROTATION_EXAMPLE: dict[str, Any] = {"authConfig": {"token": "n3w-t0ken"}}
DEACTIVATION_EXAMPLE: dict[str, Any] = {"status": "inactive"}
