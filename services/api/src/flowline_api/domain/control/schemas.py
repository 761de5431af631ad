"""Request bodies of the execution commands."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Reason = Annotated[str, msgspec.Meta(max_length=2000, description="why; recorded in the execution's error")]
Note = Annotated[str, msgspec.Meta(max_length=2000, description="recorded in the RETRY_REQUESTED event")]
DryRun = Annotated[bool, msgspec.Meta(description="answer which steps would run again, and change nothing")]


class CancelRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Cancel an execution."""

    reason: Reason | None = None


class RerunRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Run an execution again from one of its steps, reusing the outputs of the steps before it."""

    from_step: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="the step to run again")]
    input: dict[str, Any] | None = None
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    dry_run: DryRun = False


class RetryRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Retry a failed execution from its failed steps, with its input or a new one."""

    note: Note | None = None
    input: dict[str, Any] | None = None
    dry_run: DryRun = False
