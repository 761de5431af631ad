"""The selection of executions a bulk operation works on, and the response bodies of bulk operations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from flowline_schemas.executions import ExecutionStatus, MetadataKey, MetadataValue, Tag


class ExecutionFilter(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The filters of `GET /executions` as an object, with the same names; every given one must hold."""

    workflow: Annotated[str, msgspec.Meta(max_length=200, description="executions of this workflow ref")] | None = None
    status: Annotated[list[ExecutionStatus], msgspec.Meta(max_length=6, description="in any of these")] | None = None
    triggered_by: Annotated[str, msgspec.Meta(max_length=100, description="api, kafka or workflow")] | None = None
    started_by: (
        Annotated[str, msgspec.Meta(max_length=300, description="e.g. api-key:<id>, jwt:<sub>, kafka")] | None
    ) = None
    parent_id: uuid.UUID | None = None
    schedule_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    tag: Annotated[list[Tag], msgspec.Meta(max_length=20, description="with every one of these tags")] | None = None
    metadata: (
        Annotated[
            dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=50, description="every key with this value")
        ]
        | None
    ) = None
    search: (
        Annotated[
            str, msgspec.Meta(min_length=1, max_length=200, description="an id prefix, or text in the workflow ref")
        ]
        | None
    ) = None


class BulkOperationError(msgspec.Struct, kw_only=True, rename="camel"):
    """Why the command failed on one execution (None: on none in particular)."""

    execution_id: str | None
    message: str


class BulkOperation(msgspec.Struct, kw_only=True, rename="camel"):
    """A bulk cancel or retry and its progress.

    `total` is how many executions the selection held at creation; once `completed` it is how many were
    handled (`succeeded + failed + skipped`). `skipped` counts executions the command did not apply to (a
    finished execution for cancel, one that has not failed for retry); `errors` keeps the first 100 failures.
    """

    id: str
    kind: Annotated[str, msgspec.Meta(description="cancel, retry, delete or backfill")]
    status: Annotated[str, msgspec.Meta(description="pending, running, completed or failed")]
    dry_run: bool
    note: str | None
    total: int
    succeeded: int
    failed: int
    skipped: int
    errors: list[BulkOperationError]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
