"""Response bodies of the task log routes, and the levels of a log record."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

# Lowest first: a filter by level keeps that level and the ones after it.
LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR"]


class TaskLog(msgspec.Struct, kw_only=True, rename="camel"):
    """One task log record."""

    id: str
    level: Annotated[str, msgspec.Meta(description="DEBUG, INFO, WARN or ERROR", examples=["INFO"])]
    message: str
    timestamp: datetime
    step_id: Annotated[str | None, msgspec.Meta(description="the step that wrote it", examples=["fetch"])]
    attempt: Annotated[int | None, msgspec.Meta(description="the attempt number (1 for the first)", examples=[1])]


class TaskLogPage(msgspec.Struct, kw_only=True, rename="camel"):
    """One page of log records, oldest first; ``total`` counts every record that matches the filters."""

    logs: list[TaskLog]
    total: int
    limit: int
    offset: int


class TaskLogLine(msgspec.Struct, kw_only=True, rename="camel"):
    """One record of a JSON download (with its task and metadata)."""

    id: str
    level: str
    message: str
    timestamp: str
    step_id: str | None
    task_id: str | None
    attempt: int | None
    metadata: dict[str, Any] | None
