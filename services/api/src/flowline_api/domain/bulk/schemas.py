"""Request bodies of bulk operations."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from flowline.db.bulk_operations import MAX_IDS
from flowline_schemas.bulk import ExecutionFilter

from flowline_api.domain.control.schemas import Note, Reason

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


class BulkDeleteRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Delete many finished root executions, each with everything under it: `ids`, or every match of `filter`."""

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
