"""Request bodies of the execution routes."""

from __future__ import annotations

from typing import Any

import msgspec

from flowline_api.domain.workflows.schemas import ExecuteRequest, WorkflowRef

STEP_STATUSES = ("pending", "scheduled", "running", "completed", "failed", "cancelled", "skipped")


class ExecutionCreate(ExecuteRequest, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Start an execution of a workflow (the latest version unless ``version`` is given)."""

    workflow: WorkflowRef


class PromiseResolve(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Resolve a promise: the waiting step completes with ``value`` as its output."""

    value: Any = None


class PromiseReject(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Reject a promise: the waiting step fails with ``reason``."""

    reason: str = "rejected"
    details: dict[str, Any] | None = None
