"""Response bodies of the task log routes, and the levels of a log record."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

# Lowest first: a filter by level keeps that level and the ones after it.
LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR"]


class TaskLog(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """One task log record (with ``matched`` and ``group`` in the answer to a text search)."""

    id: str
    level: Annotated[str, msgspec.Meta(description="DEBUG, INFO, WARN or ERROR", examples=["INFO"])]
    message: str
    timestamp: datetime
    step_id: Annotated[str | None, msgspec.Meta(description="the step that wrote it", examples=["fetch"])]
    attempt: Annotated[int | None, msgspec.Meta(description="the attempt number (1 for the first)", examples=[1])]
    matched: Annotated[
        bool | None, msgspec.Meta(description="a search's answer: whether the message contains `q` (or is context)")
    ] = None
    group: Annotated[
        int | None,
        msgspec.Meta(description="a search's answer: which match and its context the record belongs to, from 0"),
    ] = None


class TaskLogPage(msgspec.Struct, kw_only=True, rename="camel"):
    """One page of log records; ``total`` counts every record that matches the filters (null for a text search)."""

    logs: list[TaskLog]
    total: int | None
    limit: int
    offset: int
    next_cursor: Annotated[
        str | None, msgspec.Meta(description="pass as `cursor` for the next page; null: the log has no more")
    ] = None


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
