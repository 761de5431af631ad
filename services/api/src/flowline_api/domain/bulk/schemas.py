"""Request bodies of bulk operations, with the OpenAPI examples of their requests and answers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from flowline.db.bulk_operations import MAX_IDS
from flowline_schemas.bulk import ExecutionFilter

from flowline_api.domain.control.schemas import Note, Reason

OPERATION_ID = "0193a5a1-0c00-7000-8000-0a1b2c3d4e5f"
BULK_PATH = "/api/v1/tenants/dev/executions/bulk"


Ids = Annotated[
    list[uuid.UUID],
    msgspec.Meta(min_length=1, max_length=MAX_IDS, description=f"these executions (1 to {MAX_IDS:,})"),
]
DryRun = Annotated[bool, msgspec.Meta(description="only count the selected executions; change nothing")]


class BulkCancelRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Cancel many executions: `ids`, or every execution matching `filter` (one of the two)."""

    ids: Ids | None = None
    filter: ExecutionFilter | None = None
    reason: Reason | None = None
    dry_run: DryRun = False


class BulkRetryRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Retry many failed executions: `ids`, or every execution matching `filter` (one of the two)."""

    ids: Ids | None = None
    filter: ExecutionFilter | None = None
    note: Note | None = None
    dry_run: DryRun = False


BULK_CANCEL_EXAMPLE: dict[str, Any] = {
    "filter": {"workflow": "demo.nap", "status": ["running", "paused"], "tag": ["batch-7"]},
    "reason": "batch 7 was started by mistake",
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
