"""What the live streams send: execution events, (on task streams) log records, and why a stream was cut off."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

# The events that finish an execution: its stream closes after one of them.
FINAL_EVENTS = frozenset({"WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"})


class StreamEvent(msgspec.Struct, kw_only=True, rename="camel", tag_field="type", tag="Event"):
    """One entry of an execution's event log, the same whether replayed from the database or live."""

    event: str
    data: dict[str, Any]
    timestamp_ms: int
    execution_id: str
    sequence: int
    step_id: str | None = None
    task_id: str | None = None
    occurred_at: datetime


class StreamLog(msgspec.Struct, kw_only=True, rename="camel", tag_field="type", tag="Log"):
    """One task log record (task streams only); it carries no SSE id."""

    id: str
    execution_id: str
    task_id: str | None
    step_id: str | None
    attempt: int | None
    level: str
    message: str
    timestamp: datetime
    metadata: dict[str, Any] | None = None


class StreamOverflow(msgspec.Struct, kw_only=True, rename="camel", tag_field="type", tag="Overflow"):
    """The last message of a stream whose client fell too far behind (SSE event `overflow`, no SSE id).

    The client resumes with its Last-Event-ID: what it missed comes from the event log.
    """

    detail: str
