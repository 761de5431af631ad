"""What the api answers, as msgspec structs mirroring the server's response schemas.

The server's own structs live in ``services/api`` next to their request bodies, examples and validation
(some import ``flowline_api`` helpers), so the client keeps copies of the response shapes. They ignore
unknown fields, so a newer server does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

Item = TypeVar("Item")


class Page(msgspec.Struct, Generic[Item], kw_only=True, rename="camel"):
    """One page of a list; ``next_cursor`` is None on the last page."""

    items: list[Item]
    total: int
    limit: int
    offset: int
    next_cursor: str | None = None


class Pack(msgspec.Struct, kw_only=True, rename="camel"):
    """A pack of workflows: the namespace ``<pack>.<name>``."""

    ref: str
    label: str | None
    description: str | None
    version: str | None
    created_at: datetime
    updated_at: datetime


class InstalledWorkflow(msgspec.Struct, kw_only=True, rename="camel"):
    """What installing a pack did to one workflow."""

    file: str
    ref: str
    change: str
    version: int


class PackInstalled(msgspec.Struct, kw_only=True, rename="camel"):
    """What installing a pack changed."""

    pack: Pack
    change: str
    workflows: list[InstalledWorkflow]


class WorkflowSummary(msgspec.Struct, kw_only=True, rename="camel"):
    """A workflow in a list, without its definition."""

    ref: str
    pack: str
    name: str
    label: str | None
    description: str | None
    version: int
    tags: list[str]
    enabled: bool
    public: bool = False
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime


class Workflow(WorkflowSummary, kw_only=True, rename="camel"):
    """A workflow with one version's definition and schemas."""

    definition: dict[str, Any]
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None


class WorkflowVersion(msgspec.Struct, kw_only=True, rename="camel"):
    """One immutable version of a workflow."""

    version: int
    created_by: str | None = None
    created_at: datetime


class ExecutionAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """A started execution: it runs asynchronously."""

    execution_id: str
    status: str
    created_at: datetime


class StepExecution(msgspec.Struct, kw_only=True, rename="camel"):
    """One step of an execution (a task)."""

    task_id: str
    execution_id: str
    step_id: str
    type: str
    status: str
    generation: int
    attempts: int
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    created_at: datetime
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None


class Task(StepExecution, kw_only=True, rename="camel"):
    """One step execution read on its own, with its workflow."""

    workflow_ref: str


class TaskLog(msgspec.Struct, kw_only=True, rename="camel"):
    """One task log record."""

    id: str
    level: str
    message: str
    timestamp: datetime
    step_id: str | None = None
    attempt: int | None = None


class TaskLogPage(msgspec.Struct, kw_only=True, rename="camel"):
    """A page of log records (limit/offset)."""

    logs: list[TaskLog]
    total: int
    limit: int
    offset: int


class ExecutionSummary(msgspec.Struct, kw_only=True, rename="camel"):
    """An execution in a list, without input, output and steps."""

    id: str
    workflow_ref: str
    workflow_version: int
    status: str
    error: dict[str, Any] | None = None
    triggered_by: str
    parent_execution_id: str | None = None
    parent_step_id: str | None = None
    root_execution_id: str | None = None
    idempotency_key: str | None = None
    metadata: dict[str, str] = {}
    tags: list[str] = []
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    duration_ms: int | None = None
    rerun_of: str | None = None


class ExecutionPage(Page[ExecutionSummary], kw_only=True, rename="camel"):
    """A page of executions; past 1,000 matches ``total`` is an estimate (``total_exact`` False)."""

    total_exact: bool = True


class Execution(ExecutionSummary, kw_only=True, rename="camel"):
    """An execution with its input, output, step counts and steps (and logs when asked for)."""

    input: dict[str, Any] = {}
    output: Any = None
    step_counts: dict[str, int] = {}
    steps: list[StepExecution] = []
    logs: list[TaskLog] | None = None


class ExecutionEvent(msgspec.Struct, kw_only=True, rename="camel"):
    """One entry of an execution's event log."""

    sequence: int
    event: str
    step_id: str | None = None
    task_id: str | None = None
    data: dict[str, Any] = {}
    occurred_at: datetime


class EventList(msgspec.Struct, kw_only=True, rename="camel"):
    """Events after a sequence; pass ``next_sequence`` back to read on."""

    events: list[ExecutionEvent]
    next_sequence: int
    has_more: bool


class ChildExecution(msgspec.Struct, kw_only=True, rename="camel"):
    """A child execution started by a ``workflow`` step."""

    child_workflow_execution_id: str
    kind: str
    parent_step_id: str | None = None
    status: str
    created_at: datetime
    completed_at: datetime | None = None


class TaskAttempt(msgspec.Struct, kw_only=True, rename="camel"):
    """One attempt of a task."""

    attempt: int
    generation: int
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: int | None = None
    worker_id: str | None = None
    error: dict[str, Any] | None = None


class Cancelled(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a cancel."""

    execution_id: str
    status: str
    cancelled_at: datetime | None = None


class StatusChanged(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a pause or resume."""

    execution_id: str
    status: str


class RetryAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a retry."""

    workflow_execution_id: str
    status: str
    message: str
    success: bool


class RerunAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """A new execution rerunning another from a step."""

    execution_id: str
    status: str
    created_at: datetime
    rerun_of: str


class PromiseSettlement(msgspec.Struct, kw_only=True, rename="camel"):
    """A resolved or rejected promise."""

    execution_id: str
    promise: str
    status: str
    settled_at: datetime


class Agent(msgspec.Struct, kw_only=True, rename="camel"):
    """A registered agent; its credentials are never returned, only the names of their fields."""

    id: str
    name: str
    description: str | None = None
    url: str
    health_path: str | None = None
    auth_type: str
    auth_config_fields: list[str] = []
    timeout_ms: int
    retry_config: dict[str, Any] | None = None
    status: str
    created_at: datetime
    updated_at: datetime


class AgentHealth(msgspec.Struct, kw_only=True, rename="camel"):
    """The result of an agent's health check."""

    status: str
    latency_ms: float
    http_status: int | None = None
    checked_at: datetime
    error: str | None = None


class BulkOperationError(msgspec.Struct, kw_only=True, rename="camel"):
    """Why one execution of a bulk operation failed."""

    execution_id: str | None = None
    message: str


class BulkOperation(msgspec.Struct, kw_only=True, rename="camel"):
    """A bulk cancel or retry and its progress."""

    id: str
    kind: str
    status: str
    dry_run: bool
    note: str | None = None
    total: int
    succeeded: int
    failed: int
    skipped: int
    errors: list[BulkOperationError] = []
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


class AuditLog(msgspec.Struct, kw_only=True, rename="camel"):
    """One audit log entry."""

    id: str
    entity_type: str
    entity_id: str
    action: str
    principal: str | None = None
    changes: dict[str, Any] | None = None
    request_id: str | None = None
    occurred_at: datetime


class StreamEvent(msgspec.Struct, kw_only=True, rename="camel", tag_field="type", tag="Event"):
    """An execution event from a live stream (history first, then live)."""

    event: str
    data: dict[str, Any] = {}
    timestamp_ms: int | None = None
    execution_id: str
    sequence: int
    step_id: str | None = None
    task_id: str | None = None
    occurred_at: datetime | None = None


class StreamLog(msgspec.Struct, kw_only=True, rename="camel", tag_field="type", tag="Log"):
    """A task log record from a task stream."""

    id: str
    execution_id: str
    task_id: str | None = None
    step_id: str | None = None
    attempt: int | None = None
    level: str
    message: str
    timestamp: datetime
    metadata: dict[str, Any] | None = None


StreamMessage = StreamEvent | StreamLog

FINAL_EVENTS = frozenset({"WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"})
