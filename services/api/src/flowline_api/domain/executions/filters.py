"""The execution list's filter, built once for every route that selects executions (lists, bulk operations)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import get_args

from flowline.db.execution_reads import ExecutionFilters
from flowline.domain.credentials import Principal
from flowline.errors import ClientError
from flowline_schemas.executions import ExecutionStatus

STATUSES: frozenset[str] = frozenset(get_args(ExecutionStatus))


def _statuses(values: Sequence[str] | None) -> list[str] | None:
    """``?status=failed,cancelled&status=paused`` → the statuses, each checked.

    Raises:
        ClientError: an unknown status.
    """
    if not values:
        return None
    statuses = sorted({status for value in values for status in value.split(",") if status})
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown:
        raise ClientError(f"status: {unknown[0]!r} is not one of {', '.join(sorted(STATUSES))}")
    return statuses or None


def owner_filter(caller: Principal) -> str | None:
    """The ``owned_by`` a caller's executions have, or None for an admin, who sees them all."""
    return None if caller.role == "admin" else caller.subject


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def execution_filters(
    *,
    workflow: str | None,
    statuses: Sequence[str] | None,
    triggered_by: str | None,
    started_by: str | None,
    parent_id: uuid.UUID | None,
    created_after: datetime | None,
    created_before: datetime | None,
    tags: Sequence[str] | None,
    metadata: dict[str, str] | None,
    search: str | None,
    caller: Principal,
    schedule_id: uuid.UUID | None = None,
) -> ExecutionFilters:
    """The filter of the values a client gave; empty values filter nothing, times without a zone are UTC.

    Only what ``caller`` may see: an admin sees every execution, others their own and public workflows'.

    Raises:
        ClientError: an unknown status.
    """
    return ExecutionFilters(
        workflow=workflow or None,
        statuses=_statuses(statuses),
        triggered_by=triggered_by or None,
        started_by=started_by or None,
        parent_id=parent_id,
        schedule_id=schedule_id,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        tags=[value for value in tags or [] if value] or None,
        metadata=metadata or None,
        search=(search or "").strip() or None,
        visible_to=owner_filter(caller),
    )
