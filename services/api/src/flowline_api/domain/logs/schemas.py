"""The log levels of the task log routes and their OpenAPI examples."""

from __future__ import annotations

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


LOG_EXAMPLE = {
    "id": "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d",
    "level": "INFO",
    "message": "attempt 1 started",
    "timestamp": "2026-01-01T10:00:00.123000Z",
    "stepId": "fetch",
    "attempt": 1,
}
LOG_PAGE_EXAMPLE = {"logs": [LOG_EXAMPLE], "total": 1, "limit": 50, "offset": 0}
