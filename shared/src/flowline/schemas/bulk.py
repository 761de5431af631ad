"""Response bodies of bulk operations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec


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
    kind: Annotated[str, msgspec.Meta(description="cancel or retry")]
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
