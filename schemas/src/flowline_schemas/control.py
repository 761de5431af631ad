"""Response bodies of the execution commands."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Cancelled(msgspec.Struct, kw_only=True, rename="camel"):
    """The execution's status after the cancellation (``cancelled`` once the engine applied it)."""

    execution_id: str
    status: str
    cancelled_at: datetime | None


class StatusChanged(msgspec.Struct, kw_only=True, rename="camel"):
    """The execution's status after a pause or resume."""

    execution_id: str
    status: str


class RerunAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The new execution a rerun started."""

    execution_id: str
    status: str
    created_at: datetime
    rerun_of: str


class RetryAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a retry: the execution is pending again and resumes from its failed steps."""

    workflow_execution_id: str
    status: str
    message: str
    success: bool


class RecoveryPreview(msgspec.Struct, kw_only=True, rename="camel"):
    """What a retry or rerun would do (``dryRun``): nothing was changed.

    ``steps`` run again (failed, cancelled and not yet run steps for a retry; the step rerun from, what follows
    it and what did not finish well for a rerun); ``kept`` keep their output. Both in definition order.
    """

    execution_id: str
    dry_run: bool = True
    steps: list[str]
    kept: list[str]
