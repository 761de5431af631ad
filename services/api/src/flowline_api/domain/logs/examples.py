"""OpenAPI examples of the task log routes."""

from __future__ import annotations

from typing import Any

PATH = "/api/v1/tenants/dev"
BAD_LEVEL = "level: 'LOUD' is not a level; use one of DEBUG, INFO, WARN, ERROR"
LOG_EXAMPLE: dict[str, Any] = {
    "id": "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d",
    "level": "INFO",
    "message": "attempt 1 started",
    "timestamp": "2026-01-01T10:00:00.123000Z",
    "stepId": "fetch",
    "attempt": 1,
}
LOG_PAGE_EXAMPLE: dict[str, Any] = {"logs": [LOG_EXAMPLE], "total": 1, "limit": 50, "offset": 0}
