"""OpenAPI examples of the schedule routes."""

from __future__ import annotations

from typing import Any

PATH = "/api/v1/tenants/dev/schedules"
SCHEDULE_ID = "0193a5a2-1d00-7000-8000-0a1b2c3d4e5f"
NOT_FOUND = f"schedule {SCHEDULE_ID} does not exist"
BAD_CRON = ("cron: '61 * * * *' is not a cron expression: [61 * * * *] is not acceptable, out of range", "/cron")
CREATE_EXAMPLE: dict[str, Any] = {
    "name": "nightly-invoices",
    "workflowRef": "billing.invoice",
    "cron": "0 3 * * *",
    "timezone": "Europe/Berlin",
    "input": {"region": "eu"},
    "overlap": "skip",
    "catchupWindow": "10m",
}
PATCH_EXAMPLE = {"cron": "*/5 * * * *", "overlap": "allow"}
BACKFILL_EXAMPLE = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}
PREVIEW_EXAMPLE = {
    "times": ["2026-11-01T02:00:00Z", "2026-11-02T02:00:00Z", "2026-11-03T02:00:00Z"],
    "total": 3,
    "new": 2,
}
