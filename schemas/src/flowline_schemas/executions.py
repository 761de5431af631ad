"""Response bodies of the execution routes, the execution statuses, and the types of execution metadata and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from flowline_schemas.logs import TaskLog

ExecutionStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]
TERMINAL_EXECUTION_STATUSES = frozenset({"completed", "failed", "cancelled"})
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
MetadataValue = Annotated[str, msgspec.Meta(max_length=500)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
# What one start may carry (the api's bodies and a Kafka SubmitExecution alike): bounded so that every value
# fits the rows and index entries it is stored in, and the list filters on the same fields accept it.
MAX_METADATA_ENTRIES = 50
MAX_TAGS = 50
MAX_IDEMPOTENCY_KEY_LENGTH = 200
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    msgspec.Meta(
        max_length=MAX_METADATA_ENTRIES,
        description="custom attributes; filter lists with `metadata.<key>=<value>`",
    ),
]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=MAX_TAGS)]


class StepExecution(msgspec.Struct, kw_only=True, rename="camel"):
    """One step of an execution (``taskId`` addresses it in task routes)."""

    task_id: str
    execution_id: str
    step_id: str
    type: str
    status: str
    generation: int
    attempts: int
    input: Any
    output: Any
    error: dict[str, Any] | None
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None


class Task(StepExecution, kw_only=True, rename="camel"):
    """A step execution read on its own, with the workflow of its execution."""

    workflow_ref: str


class StepList(msgspec.Struct, kw_only=True, rename="camel"):
    """Every step execution of an execution, in definition order."""

    steps: list[StepExecution]


class ExecutionSummary(msgspec.Struct, kw_only=True, rename="camel"):
    """An execution in a list: everything but its input, output and steps."""

    id: str
    workflow_ref: str
    workflow_version: int
    status: str
    error: dict[str, Any] | None
    triggered_by: str
    started_by: (
        Annotated[
            str,
            msgspec.Meta(
                description="who started it: api-key:<id>, jwt:<sub>, schedule:<id>, kafka or parent:<execution id>"
            ),
        ]
        | None
    ) = None
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
    rerun_of: str | None = None
    schedule_id: Annotated[
        str | None, msgspec.Meta(description="the schedule that started it (`triggeredBy` schedule)")
    ] = None
    scheduled_for: (
        Annotated[datetime, msgspec.Meta(description="the time a schedule's run stands for (for a trigger: when)")]
        | None
    ) = None


class Execution(ExecutionSummary, kw_only=True, rename="camel"):
    """An execution with its input, output, step counts by status and its steps (and its latest logs, if asked)."""

    input: dict[str, Any]
    output: Any
    step_counts: dict[str, int]
    steps: list[StepExecution]
    logs: (
        Annotated[list[TaskLog], msgspec.Meta(description="with `include=logs`: the latest records, oldest first")]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class ExecutionPage(msgspec.Struct, kw_only=True, rename="camel"):
    """A page of executions (the list shape of every list, plus ``totalExact``).

    Past 1,000 matches ``total`` is PostgreSQL's estimate and ``totalExact`` is false.
    """

    items: list[ExecutionSummary]
    total: int
    total_exact: bool
    limit: int
    offset: int
    next_cursor: str | None


class ExecutionEvent(msgspec.Struct, kw_only=True, rename="camel"):
    """One entry of the event log; ``data`` is the snapshot of what changed."""

    sequence: int
    event: str
    step_id: str | None
    task_id: str | None
    data: dict[str, Any]
    occurred_at: datetime


class EventList(msgspec.Struct, kw_only=True, rename="camel"):
    """Events in sequence order; pass ``nextSequence`` as ``sinceSequence`` to read on (or to poll)."""

    events: list[ExecutionEvent]
    next_sequence: int
    has_more: bool


class ChildExecution(msgspec.Struct, kw_only=True, rename="camel"):
    """An execution started by a workflow step; ``kind`` is its workflow ref."""

    child_workflow_execution_id: str
    kind: str
    parent_step_id: str | None
    status: str
    created_at: datetime
    completed_at: datetime | None


class ChildList(msgspec.Struct, kw_only=True, rename="camel"):
    """The child executions of an execution, oldest first."""

    children: list[ChildExecution]


class TaskAttempt(msgspec.Struct, kw_only=True, rename="camel"):
    """One attempt of a task; ``generation`` increases on a manual retry or rerun, ``attempt`` restarts at 1."""

    attempt: int
    generation: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    worker_id: str | None
    error: dict[str, Any] | None
    input: Any = None  # what the attempt ran with (None for attempts from before Flowline kept it)
    output: Any = None


class AttemptList(msgspec.Struct, kw_only=True, rename="camel"):
    """The attempts of a task, oldest first."""

    attempts: list[TaskAttempt]


class PromiseSettlement(msgspec.Struct, kw_only=True, rename="camel"):
    """The promise as recorded; the engine applies it to the waiting step within moments."""

    execution_id: str
    promise: str
    status: str
    settled_at: datetime
