"""Response bodies of schedules: when they fire, what they start, and their last run."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec


class LastRun(msgspec.Struct, kw_only=True, rename="camel"):
    """A schedule's latest run: the time it stands for, its execution and that execution's status."""

    scheduled_for: datetime
    execution_id: str
    status: Annotated[str | None, msgspec.Meta(description="null when the execution was deleted")]


class Schedule(msgspec.Struct, kw_only=True, rename="camel"):
    """A cron or interval schedule of a workflow."""

    id: str
    name: str
    description: str | None
    workflow_ref: str
    version: Annotated[int | None, msgspec.Meta(description="null: the latest version at each run")]
    cron: str | None
    interval: Annotated[str | None, msgspec.Meta(description="a duration such as 15m", examples=["15m"])]
    timezone: str
    input: dict[str, Any]
    overlap: Annotated[str, msgspec.Meta(description="skip, buffer_one, allow or cancel_previous")]
    catchup_window: Annotated[str, msgspec.Meta(description="how late a missed run may still start; 0s: never")]
    start_at: datetime | None
    end_at: datetime | None
    paused: bool
    metadata: dict[str, str]
    tags: list[str]
    next_run_at: Annotated[list[datetime], msgspec.Meta(description="the next five fire times (none when paused)")]
    last_run: LastRun | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class TriggeredRun(msgspec.Struct, kw_only=True, rename="camel"):
    """The run a trigger started now."""

    execution_id: str
    scheduled_for: datetime


class BackfillPreview(msgspec.Struct, kw_only=True, rename="camel"):
    """What a backfill would start (``dryRun``): nothing is started or stored."""

    times: Annotated[list[datetime], msgspec.Meta(description="every fire time in the window, oldest first")]
    total: int
    new: Annotated[int, msgspec.Meta(description="the times that have no run yet: what the backfill would start")]
