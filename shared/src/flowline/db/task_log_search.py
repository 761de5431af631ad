"""Searching task logs: a case-insensitive substring of the message, in a bounded scan, with context around matches.

A search reads the records of one task or one execution through its index (task or execution, then time), in
(timestamp, id) order from a keyset position, and looks at no more than ``scan`` of them: a page may end short of
its ``limit`` (even empty) when the scan ran out first, and says where to go on. Counting every match would read the
whole log, so a search tells none. The context of a match is its neighbours in its own task, read a few at a time
through the task's index.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from flowline.db.sql import bind, typed
from flowline.db.task_logs import LOG_COLUMNS, LogFilters, LogPosition, TaskLogRow, after_position


def like_pattern(text: str) -> str:
    r"""An ILIKE pattern (``ESCAPE '\'``) matching messages that contain ``text`` as it is: ``%`` and ``_`` too."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class FoundLogRow(TaskLogRow, frozen=True, kw_only=True):
    """A record a search looked at: a match, or the last record its scan reached (``examined`` = the scan)."""

    task_id: uuid.UUID | None
    matched: bool
    examined: int  # its place in the scan, from 1


class ContextLogRow(TaskLogRow, frozen=True, kw_only=True):
    """A record near a match (``around``: the match's id), in the match's own task; it may match too."""

    task_id: uuid.UUID | None
    matched: bool
    around: uuid.UUID


# The scan reads at most :scan records in order; the outer LIMIT stops it as soon as the page is full. What comes
# back: the matches, and the record where the scan ended if it used up :scan (the position to go on from).
_SEARCH = """
SELECT * FROM (
    SELECT {columns}, task_id, message ILIKE :pattern ESCAPE '\\' AS matched,
        row_number() OVER (ORDER BY timestamp, id) AS examined
    FROM (
        SELECT {columns}, task_id FROM task_logs WHERE {where} AND {keyset} ORDER BY timestamp, id LIMIT :scan
    ) scanned
) numbered
WHERE matched OR examined = :scan
ORDER BY timestamp, id
LIMIT :limit + 1
"""


def search_task_logs_query(
    filters: LogFilters, text: str, *, after: LogPosition | None, limit: int, scan: int
) -> list[Any]:
    """The statement of a search page (see ``search_task_logs``) and its arguments."""
    where, params = filters.where()
    keyset, position = after_position(after)
    sql = _SEARCH.format(columns=LOG_COLUMNS, where=where, keyset=keyset)
    return bind(sql, params, position, pattern=like_pattern(text), limit=limit, scan=scan)


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """Up to ``limit`` matches, oldest first, and where the next page starts (None: the log has no more)."""

    matches: list[FoundLogRow]
    next_position: LogPosition | None


async def search_task_logs(
    connection: asyncpg.Connection | asyncpg.Pool,
    filters: LogFilters,
    text: str,
    *,
    after: LogPosition | None,
    limit: int,
    scan: int,
) -> SearchPage:
    """The records ``filters`` select whose message contains ``text`` (any case), after ``after``, oldest first.

    Looks at no more than ``scan`` records: the page ends at its ``limit``-th match or where the scan stopped.
    """
    rows = typed(
        await connection.fetch(*search_task_logs_query(filters, text, after=after, limit=limit, scan=scan)),
        FoundLogRow,
    )
    matches = [row for row in rows if row.matched][:limit]
    if len(matches) == limit and len(rows) > limit:
        last: FoundLogRow | None = matches[-1]
    else:  # the page is not full: the scan reached the log's end, or its bound at the last row
        last = rows[-1] if rows and rows[-1].examined == scan else None
    return SearchPage(matches=matches, next_position=None if last is None else (last.timestamp, last.id))


# Up to :context records before and after each match, in its task and among the records the filters keep.
_CONTEXT = """
SELECT near.*, near.message ILIKE :pattern ESCAPE '\\' AS matched, m.match_id AS around
FROM unnest(:match_tasks::uuid[], :match_times::timestamptz[], :match_ids::uuid[]) AS m(match_task, match_at, match_id)
CROSS JOIN LATERAL (
    (SELECT {columns}, task_id FROM task_logs
        WHERE {where} AND task_id = m.match_task
            AND timestamp <= m.match_at AND (timestamp, id) < (m.match_at, m.match_id)
        ORDER BY timestamp DESC, id DESC LIMIT :context)
    UNION ALL
    (SELECT {columns}, task_id FROM task_logs
        WHERE {where} AND task_id = m.match_task
            AND timestamp >= m.match_at AND (timestamp, id) > (m.match_at, m.match_id)
        ORDER BY timestamp, id LIMIT :context)
) near
ORDER BY near.timestamp, near.id
"""


def context_query(filters: LogFilters, text: str, matches: list[FoundLogRow], context: int) -> list[Any]:
    """The statement reading the neighbours of ``matches`` (those with a task) and its arguments."""
    where, params = filters.where()
    in_tasks = [match for match in matches if match.task_id is not None]
    return bind(
        _CONTEXT.format(columns=LOG_COLUMNS, where=where),
        params,
        pattern=like_pattern(text),
        match_tasks=[match.task_id for match in in_tasks],
        match_times=[match.timestamp for match in in_tasks],
        match_ids=[match.id for match in in_tasks],
        context=context,
    )


async def list_context(
    connection: asyncpg.Connection | asyncpg.Pool,
    filters: LogFilters,
    text: str,
    matches: list[FoundLogRow],
    context: int,
) -> list[ContextLogRow]:
    """Up to ``context`` records before and after each match in its own task, oldest first.

    A record near two matches comes once for each; ``matched`` says whether it contains ``text`` too.
    """
    return typed(await connection.fetch(*context_query(filters, text, matches, context)), ContextLogRow)
