"""Messages on every Kafka topic (docs/architecture.md §5): one tagged union per topic, one decoder per consumer.

Evolution rules: a new field gets a default; a field never changes type; events never forbid unknown
fields, so old consumers read new producers' messages.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from flowline_schemas.executions import MAX_IDEMPOTENCY_KEY_LENGTH, Metadata, Tags
from flowline_schemas.logs import LogLevel

from flowline.runtime.ids import uuid7

# The longest reason a CancelSubmission may give (the api's cancel body has the same bound).
MAX_CANCEL_REASON_LENGTH = 2000


def _now() -> datetime:
    return datetime.now(UTC)


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every message carries; the key on Kafka is the execution id."""

    id: uuid.UUID = msgspec.field(default_factory=uuid7)
    occurred_at: datetime = msgspec.field(default_factory=_now)


class TenantMessage(Message, frozen=True, kw_only=True):
    """An internal message: the tenant is known by id."""

    tenant_id: uuid.UUID
    execution_id: uuid.UUID


# flowline.submissions (the one topic other systems produce to) ------------------------------------


class SubmitExecution(Message, frozen=True, kw_only=True, tag=True):
    """The external, versioned way to start an execution: the one message other systems produce.

    Produce to the submissions topic (``flowline.submissions``) JSON like ``{"type": "SubmitExecution",
    "schema_version": 1, "id": "<uuid>", "tenant": "dev", "workflow": "demo.hello", "input": {...},
    "idempotency_key": "order-42"}``.
    ``id`` (required) is the producer's message id; ``idempotency_key`` (default: derived from the
    message id) makes the same submission twice start one execution. ``version`` picks a workflow
    version (default: the latest). ``metadata``, ``tags`` and ``idempotency_key`` have the bounds of the
    api's (``flowline_schemas.executions``); a message past one is dead-lettered. A submission that cannot start
    (unknown tenant or workflow, an input its schema refuses, a version out of range) is answered with a
    ``SubmissionRejected`` on the events topic; anything on the topic but a SubmitExecution or a
    CancelSubmission is dead-lettered.
    """

    id: uuid.UUID
    schema_version: int = 1
    tenant: str
    workflow: str
    version: int | None = None
    input: dict[str, Any] = {}
    # Bounded as the api's starts are: a message past a bound fails validation and is dead-lettered.
    idempotency_key: Annotated[str, msgspec.Meta(max_length=MAX_IDEMPOTENCY_KEY_LENGTH)] | None = None
    metadata: Metadata = {}
    tags: Tags = []


class CancelSubmission(Message, frozen=True, kw_only=True, tag=True):
    """Cancel, from another system, an execution that its SubmitExecution started (submissions topic).

    Produce JSON like ``{"type": "CancelSubmission", "schema_version": 1, "id": "<uuid>", "tenant": "dev",
    "idempotency_key": "order-42", "reason": "order withdrawn"}``. The execution is the one the submission
    with that idempotency key started in that tenant (``kafka:<its id>`` for one that gave none), and only one
    a submission started (``startedBy: kafka``): a producer of submissions cancels nothing the api or a workflow
    started. A cancel that cannot apply (no such execution, already finished) is answered with a
    ``SubmissionRejected`` naming it.
    """

    id: uuid.UUID
    schema_version: int = 1
    tenant: str
    idempotency_key: Annotated[str, msgspec.Meta(max_length=MAX_IDEMPOTENCY_KEY_LENGTH)]
    reason: Annotated[str, msgspec.Meta(max_length=MAX_CANCEL_REASON_LENGTH)] | None = None


SubmissionMessage = SubmitExecution | CancelSubmission


# flowline.executions.requests ----------------------------------------------------------------------


class CreatedExecution(msgspec.Struct, frozen=True, kw_only=True):
    """What the executor reads of a new execution, carried with the request to start it."""

    input: dict[str, Any]
    workflow_ref: str
    workflow_version: int
    root_execution_id: uuid.UUID
    parent_execution_id: uuid.UUID | None = None
    parent_step_id: str | None = None
    # Its owner, and so its children's. Named as before executions had a started_by of their own: requests
    # queued across that upgrade keep their owner.
    owned_by: str | None = msgspec.field(default=None, name="started_by")
    # The logical time a schedule's run stands for (templates see it as ``execution.scheduledFor``).
    scheduled_for: datetime | None = None


class ExecutionRequested(TenantMessage, frozen=True, kw_only=True, tag=True):
    """The api stored a pending execution; the executor should start it.

    ``workflow_version_id``, the version it runs, lets the executor lock and start it in one statement; a
    request sent again later (a retry, a redrive) may leave it out. ``created``, the new execution as stored
    (when its input is small), lets the executor work out its start before reading it and write the start
    in one statement, which applies only if the execution is still as created.
    """

    workflow_version_id: uuid.UUID | None = None
    created: CreatedExecution | None = None


RequestMessage = ExecutionRequested


# flowline.executions.control -----------------------------------------------------------------------


class CancelExecution(TenantMessage, frozen=True, kw_only=True, tag=True):
    """Someone asked to cancel the execution."""

    reason: str | None = None
    requested_by: str | None = None


class TimerFired(TenantMessage, frozen=True, kw_only=True, tag=True):
    """A durable timer (sleep, retry backoff, timeout) came due."""

    timer_id: uuid.UUID
    kind: str
    step_execution_id: uuid.UUID | None = None


class PromiseSettled(TenantMessage, frozen=True, kw_only=True, tag=True):
    """A promise a wait step waits on was resolved or rejected through the api."""

    promise_id: uuid.UUID
    step_execution_id: uuid.UUID


class ChildExecutionStarted(TenantMessage, frozen=True, kw_only=True, tag=True):
    """A child execution started running; ``execution_id`` is the parent's (the key)."""

    child_execution_id: uuid.UUID


class ChildExecutionFinished(TenantMessage, frozen=True, kw_only=True, tag=True):
    """A child execution reached a final status; ``execution_id`` is the parent's (the key)."""

    child_execution_id: uuid.UUID


class AdvanceExecution(TenantMessage, frozen=True, kw_only=True, tag=True):
    """Look at the execution's steps again (after the scheduler gave up on a step, or found it idle)."""


ControlMessage = (
    CancelExecution | TimerFired | PromiseSettled | ChildExecutionStarted | ChildExecutionFinished | AdvanceExecution
)


# flowline.tasks ------------------------------------------------------------------------------------


class TaskDispatched(TenantMessage, frozen=True, kw_only=True, tag=True):
    """Run one attempt of a step execution."""

    step_execution_id: uuid.UUID
    step_id: str
    generation: int
    attempt: int


TaskMessage = TaskDispatched


# flowline.timers -----------------------------------------------------------------------------------


class TimerScheduled(TenantMessage, frozen=True, kw_only=True, tag=True):
    """A timer row was committed; the scheduler may wake for it before its next poll."""

    timer_id: uuid.UUID
    fire_at: datetime


TimerMessage = TimerScheduled


# flowline.events -----------------------------------------------------------------------------------

EventType = Literal[
    "WORKFLOW_CREATED",
    "WORKFLOW_STARTED",
    "WORKFLOW_COMPLETED",
    "WORKFLOW_FAILED",
    "WORKFLOW_CANCELLED",
    "WORKFLOW_SUSPENDED",
    "WORKFLOW_RESUMED",
    "RETRY_REQUESTED",
    "TASK_CREATED",
    "TASK_SCHEDULED",
    "TASK_STARTED",
    "TASK_COMPLETED",
    "TASK_FAILED",
    "TASK_SKIPPED",
    "TASK_CANCELLED",
    "TIMER_STARTED",
    "TIMER_FIRED",
    "TIMER_CANCELLED",
    "PROMISE_CREATED",
    "PROMISE_RESOLVED",
    "PROMISE_REJECTED",
    "CHILD_WORKFLOW_INITIATED",
    "CHILD_WORKFLOW_STARTED",
    "CHILD_WORKFLOW_COMPLETED",
    "CHILD_WORKFLOW_FAILED",
]


class ExecutionEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="Event", rename="camel"):
    """One entry of an execution's event log, as committed (``sequence`` orders them).

    This is the payload live streams and external consumers see, so it follows the API's camelCase:
    ``{"type": "Event", "event": "TASK_STARTED", "data": {...}, "timestampMs": ..., "executionId": ...}``.
    It carries the same ``id``, ``occurredAt``, ``tenantId`` and ``executionId`` as every other message.
    """

    id: uuid.UUID = msgspec.field(default_factory=uuid7)
    occurred_at: datetime = msgspec.field(default_factory=_now)
    tenant_id: uuid.UUID
    execution_id: uuid.UUID
    timestamp_ms: int
    sequence: int
    event: str
    step_id: str | None = None
    task_id: uuid.UUID | None = None
    data: dict[str, Any] = {}


class SubmissionRejected(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", rename="camel", tag=True):
    """A SubmitExecution that started nothing, or a CancelSubmission that cancelled nothing, and why.

    Keyed by the submission's idempotency key (or id), so its producer can follow the outcome. ``request`` names
    the message refused; a cancel names no ``workflow``.
    """

    id: uuid.UUID = msgspec.field(default_factory=uuid7)
    occurred_at: datetime = msgspec.field(default_factory=_now)
    submission_id: uuid.UUID
    tenant: str
    workflow: str = ""
    idempotency_key: str | None = None
    reason: str
    request: Literal["SubmitExecution", "CancelSubmission"] = "SubmitExecution"


class OperationEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True, rename="camel"):
    """A state event of a bulk operation (OPERATION_COMPLETED), which belongs to no single execution.

    Keyed by ``operationId`` instead of an execution id; ``data`` is the operation's snapshot:
    ``{"type": "OperationEvent", "event": "OPERATION_COMPLETED", "operationId": ..., "data": {"id": ...,
    "kind": "cancel", "status": "completed", "total": 500, "succeeded": 500, ...}, "timestampMs": ...}``.
    """

    id: uuid.UUID = msgspec.field(default_factory=uuid7)
    occurred_at: datetime = msgspec.field(default_factory=_now)
    tenant_id: uuid.UUID
    operation_id: uuid.UUID
    timestamp_ms: int
    event: str
    data: dict[str, Any] = {}


EventMessage = ExecutionEvent | SubmissionRejected | OperationEvent


# flowline.logs -------------------------------------------------------------------------------------


class TaskLogRecord(TenantMessage, frozen=True, kw_only=True, tag=True):
    """One task log line; ``id`` makes ingestion idempotent."""

    task_id: uuid.UUID | None = None
    step_id: str | None = None
    attempt: int | None = None
    level: LogLevel = "INFO"
    message: str
    timestamp: datetime = msgspec.field(default_factory=_now)
    metadata: dict[str, Any] = {}


class TaskLogBatch(TenantMessage, frozen=True, kw_only=True, tag=True):
    """The log records one state change of an execution wrote, as one message (fewer, larger messages)."""

    records: list[TaskLogRecord]


LogMessage = TaskLogRecord | TaskLogBatch


def encode(message: Message | ExecutionEvent | SubmissionRejected | OperationEvent) -> bytes:
    """The wire form of any message (JSON, tagged with ``type``)."""
    return msgspec.json.encode(message)


def decoder(union: Any) -> msgspec.json.Decoder[Any]:
    """A decoder for one topic's union; build it once per consumer."""
    return msgspec.json.Decoder(union)
