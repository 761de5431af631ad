"""Request bodies of the schedule routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from flowline.domain.schedules import Overlap
from flowline_schemas.agents import Description
from flowline_schemas.executions import Metadata, Tags

from flowline_api.domain.merge_patch import MergePatch

ScheduleName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,199}$",
        description="unique among the tenant's schedules",
        examples=["nightly"],
    ),
]
WorkflowRef = Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["billing.invoice"])]
Version = Annotated[int, msgspec.Meta(ge=1, description="this version at every run (default: the latest at each run)")]
Cron = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        description="five fields (minute hour day month weekday), six with seconds first, or @hourly, @daily, …",
        examples=["0 3 * * *"],
    ),
]
Interval = Annotated[
    str, msgspec.Meta(min_length=1, max_length=50, description="a positive duration: 2s, 15m, 1h30m", examples=["15m"])
]
Timezone = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="IANA time zone of a cron")]
CatchupWindow = Annotated[
    str | int,
    msgspec.Meta(
        description="how late a run missed during downtime may still start (a duration or seconds; 0: never)",
        examples=["1m"],
    ),
]
ScheduleInput = Annotated[dict[str, Any], msgspec.Meta(description="the input of every run")]


class ScheduleCreate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A new schedule: exactly one of `cron` and `interval`."""

    name: ScheduleName
    workflow_ref: WorkflowRef
    version: Version | None = None
    cron: Cron | None = None
    interval: Interval | None = None
    timezone: Timezone = "UTC"
    input: ScheduleInput = msgspec.field(default_factory=dict)
    overlap: Overlap = "skip"
    catchup_window: CatchupWindow = "1m"
    start_at: datetime | None = None
    end_at: datetime | None = None
    paused: bool = False
    metadata: Metadata | None = None
    tags: Tags | None = None
    description: Description | None = None


class ScheduleUpdate(MergePatch, kw_only=True, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Changes to a schedule (a JSON merge patch): omitted fields keep their value, null clears an optional one.

    Setting `cron` clears `interval` and the other way round.
    """

    name: ScheduleName | msgspec.UnsetType = msgspec.UNSET
    workflow_ref: WorkflowRef | msgspec.UnsetType = msgspec.UNSET
    version: Version | msgspec.UnsetType | None = msgspec.UNSET
    cron: Cron | msgspec.UnsetType | None = msgspec.UNSET
    interval: Interval | msgspec.UnsetType | None = msgspec.UNSET
    timezone: Timezone | msgspec.UnsetType = msgspec.UNSET
    input: ScheduleInput | msgspec.UnsetType = msgspec.UNSET
    overlap: Overlap | msgspec.UnsetType = msgspec.UNSET
    catchup_window: CatchupWindow | msgspec.UnsetType = msgspec.UNSET
    start_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    end_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    paused: bool | msgspec.UnsetType = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET


class BackfillRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Start one run per time the schedule would have fired in [`start`, `end`); `dryRun`: only say which."""

    start: datetime
    end: datetime
    dry_run: bool = False
