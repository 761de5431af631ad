"""What an event's ``data`` holds: a snapshot of the thing that changed (workflow, task, timer, promise, child).

Stream subscribers see these in camelCase; fields that do not apply to an event are left out.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """The base of every snapshot."""


class WorkflowSnapshot(Snapshot, frozen=True, kw_only=True):
    """The execution itself (WORKFLOW_* and RETRY_REQUESTED)."""

    status: str
    workflow_ref: str | None = None
    workflow_version: int | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    note: str | None = None


class TaskSnapshot(Snapshot, frozen=True, kw_only=True):
    """A step execution and its attempt (TASK_*)."""

    status: str
    attempt: int | None = None
    worker: str | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    retry_at: str | None = None
    recovered_from: str | None = None
    reused_from: str | None = None  # a rerun took this step's output from that execution


class TimerSnapshot(Snapshot, frozen=True, kw_only=True):
    """A sleep step's durable timer (TIMER_*); ``status`` is its step's."""

    timer_id: str
    status: str | None = None
    fire_at: str | None = None


class PromiseSnapshot(Snapshot, frozen=True, kw_only=True):
    """A wait step's promise (PROMISE_*)."""

    promise: str
    promise_id: str | None = None
    status: str | None = None
    expires_at: str | None = None
    value: Any = None
    error: dict[str, Any] | None = None


class ChildWorkflowSnapshot(Snapshot, frozen=True, kw_only=True):
    """A workflow step's child execution (CHILD_WORKFLOW_*)."""

    child_execution_id: str
    status: str
    workflow: str | None = None
    attempt: int | None = None


class OperationSnapshot(Snapshot, frozen=True, kw_only=True):
    """A bulk operation and its counts (OPERATION_COMPLETED)."""

    id: str
    kind: str
    status: str
    total: int
    succeeded: int
    failed: int
    skipped: int
