"""What a log page asks for (filters, a text search and its context), and the matches gathered with their context."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from flowline.db.task_log_search import ContextLogRow, FoundLogRow
from flowline.db.task_logs import TaskLogRow
from flowline_schemas.logs import TaskLog

# A search looks at no more records than this per page (see flowline.db.task_log_search).
SEARCH_SCAN_RECORDS = 20_000
# Matches per page when each comes with context (a page then holds up to (2 * context + 1) times as many records).
CONTEXT_MATCHES = 1_000
MAX_CONTEXT = 20
MAX_SEARCH_LENGTH = 200


class LogQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which records a log page shows.

    By level (and above), step and attempt; whose message contains ``text`` (any case), each with up to ``context``
    records before and after it from its own task.
    """

    level: str | None = None
    step_id: str | None = None
    attempt: int | None = None
    text: str | None = None
    context: int = 0


def to_log(row: TaskLogRow, *, matched: bool | None = None, group: int | None = None) -> TaskLog:
    """A stored record as the API shows it (``matched`` and ``group`` in a search's answer)."""
    return TaskLog(
        id=str(row.id),
        level=row.level,
        message=row.message,
        timestamp=row.timestamp,
        step_id=row.step_id,
        attempt=row.attempt,
        matched=matched,
        group=group,
    )


def _position(row: TaskLogRow) -> tuple[datetime, uuid.UUID]:
    return row.timestamp, row.id


def with_context(matches: list[FoundLogRow], near: list[ContextLogRow]) -> list[TaskLog]:
    """The matches with the records near them, as groups numbered in the order of their first match.

    A group is one task's records in order. Two matches of a task whose contexts share a record make one group, so
    no record comes twice; a record of the context that matches too is marked so.
    """
    around: dict[uuid.UUID, list[ContextLogRow]] = {}
    for row in near:
        around.setdefault(row.around, []).append(row)
    groups: list[dict[uuid.UUID, tuple[TaskLogRow, bool]]] = []
    latest_group_of_task: dict[uuid.UUID, int] = {}
    for match in matches:
        window: dict[uuid.UUID, tuple[TaskLogRow, bool]] = {
            row.id: (row, row.matched) for row in around.get(match.id, [])
        }
        window[match.id] = (match, True)
        index = latest_group_of_task.get(match.task_id) if match.task_id is not None else None
        if index is not None and not groups[index].keys().isdisjoint(window):
            groups[index].update(window)
        else:
            groups.append(window)
            index = len(groups) - 1
        if match.task_id is not None:
            latest_group_of_task[match.task_id] = index
    return [
        to_log(row, matched=matched, group=number)
        for number, group in enumerate(groups)
        for row, matched in sorted(group.values(), key=lambda item: _position(item[0]))
    ]
