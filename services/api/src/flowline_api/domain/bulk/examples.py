"""OpenAPI examples of the bulk operation routes."""

from __future__ import annotations

from typing import Any

OPERATION_ID = "0193a5a1-0c00-7000-8000-0a1b2c3d4e5f"
BULK_PATH = "/api/v1/tenants/dev/executions/bulk"
UNKNOWN_EXECUTION = "execution 0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a does not exist"
BOTH_GIVEN = ("give either ids or filter, not both and not neither", "")
BULK_CANCEL_EXAMPLE: dict[str, Any] = {
    "filter": {"workflow": "demo.nap", "status": ["running", "paused"], "tag": ["batch-7"]},
    "reason": "batch 7 was started by mistake",
}
BULK_DELETE_EXAMPLE: dict[str, Any] = {
    "filter": {"workflow": "demo.nap", "status": ["failed"], "createdBefore": "2026-11-01T00:00:00Z"},
    "reason": "the November test runs",
}
BULK_RETRY_EXAMPLE: dict[str, Any] = {
    "ids": ["0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a"],
    "note": "the upstream is back",
    "dryRun": True,
}
OPERATION_EXAMPLE: dict[str, Any] = {
    "id": OPERATION_ID,
    "kind": "cancel",
    "status": "pending",
    "dryRun": False,
    "note": "batch 7 was started by mistake",
    "total": 500,
    "succeeded": 0,
    "failed": 0,
    "skipped": 0,
    "errors": [],
    "createdAt": "2026-11-22T09:00:00Z",
    "startedAt": None,
    "completedAt": None,
}
DRY_RUN_EXAMPLE: dict[str, Any] = {
    **OPERATION_EXAMPLE,
    "kind": "retry",
    "status": "completed",
    "dryRun": True,
    "note": "the upstream is back",
    "total": 1,
    "completedAt": "2026-11-22T09:00:00Z",
}
COMPLETED_EXAMPLE: dict[str, Any] = {
    **OPERATION_EXAMPLE,
    "status": "completed",
    "total": 500,
    "succeeded": 498,
    "skipped": 2,
    "startedAt": "2026-11-22T09:00:00.400Z",
    "completedAt": "2026-11-22T09:00:03Z",
}
