"""Request and response bodies of the execution commands."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

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


class RerunRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Run an execution again from one of its steps, reusing the outputs of the steps before it."""

    from_step: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="the step to run again")]
    input: dict[str, Any] | None = None
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None


class RerunAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The new execution a rerun started."""

    execution_id: str
    status: str
    created_at: datetime
    rerun_of: str


class RetryRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Retry a failed execution from its failed steps."""

    note: Note | None = None


class RetryAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a retry: the execution is pending again and resumes from its failed steps."""

    workflow_execution_id: str
    status: str
    message: str
    success: bool
