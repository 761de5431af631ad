"""Request and response bodies of the execution commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Reason = Annotated[str, msgspec.Meta(max_length=2000, description="why; recorded in the execution's error")]
Note = Annotated[str, msgspec.Meta(max_length=2000, description="recorded in the RETRY_REQUESTED event")]


class CancelRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Cancel an execution."""

    reason: Reason | None = None


class Cancelled(
    msgspec.Struct,
    kw_only=True,
    rename="camel",
):
    """The execution's status after the cancellation (``cancelled`` once the engine applied it)."""

    execution_id: str
    status: str
    cancelled_at: datetime | None


class StatusChanged(msgspec.Struct, kw_only=True, rename="camel"):
    """The execution's status after a pause or resume."""

    execution_id: str
    status: str


class RetryRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Retry a failed execution from its failed steps."""

    note: Note | None = None


class RetryAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a retry: the execution is pending again and resumes from its failed steps."""

    workflow_execution_id: str
    status: str
    message: str
    success: bool
