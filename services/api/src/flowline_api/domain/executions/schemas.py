"""Response bodies of the execution routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class StepExecution(msgspec.Struct, kw_only=True, rename="camel"):
    """One step of an execution (``taskId`` addresses it in task routes)."""

    task_id: str
    step_id: str
    type: str
    status: str
    attempts: int
    input: Any
    output: Any
    error: dict[str, Any] | None
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None


class Execution(msgspec.Struct, kw_only=True, rename="camel"):
    """An execution with its steps."""

    id: str
    workflow_ref: str
    workflow_version: int
    status: str
    input: dict[str, Any]
    output: Any
    error: dict[str, Any] | None
    triggered_by: str
    parent_execution_id: str | None
    parent_step_id: str | None
    root_execution_id: str
    idempotency_key: str | None
    metadata: dict[str, str]
    tags: list[str]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    duration_ms: int | None
    step_counts: dict[str, int]
    steps: list[StepExecution]


class PromiseResolve(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Resolve a promise: the waiting step completes with ``value`` as its output."""

    value: Any = None


class PromiseReject(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Reject a promise: the waiting step fails with ``reason``."""

    reason: str = "rejected"
    details: dict[str, Any] | None = None


class PromiseSettlement(msgspec.Struct, kw_only=True, rename="camel"):
    """The promise as recorded; the engine applies it to the waiting step within moments."""

    execution_id: str
    promise: str
    status: str
    settled_at: datetime
