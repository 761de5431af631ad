"""Reading task logs: filtered pages, and whole-execution downloads streamed a page at a time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

import asyncpg
import msgspec
from flowline.db.task_log_search import list_context, search_task_logs
from flowline.db.task_logs import (
    LogFilters,
    LogPosition,
    TaskLogRow,
    count_task_logs,
    download_page_query,
    list_latest_task_logs,
    list_task_logs,
)
from flowline.errors import ClientError, NotFound
from flowline_schemas.logs import TaskLog, TaskLogLine, TaskLogPage
from litestar.di import NamedDependency

from flowline_api.domain.logs.schemas import LEVELS
from flowline_api.domain.logs.search import CONTEXT_MATCHES, SEARCH_SCAN_RECORDS, LogQuery, to_log, with_context
from flowline_api.pagination import decode_cursor, encode_cursor

DownloadFormat = Literal["text", "json"]
# A download's page, read in one round trip and sent as one chunk: at most this many rows, and no more rows
# than reach this many bytes of messages and metadata (always at least one), so memory stays flat whatever the
# log's length and however large its records.
DOWNLOAD_PAGE_ROWS = 1_000
DOWNLOAD_PAGE_BYTES = 1_048_576
_BEFORE_ANY_TIME = datetime.min.replace(tzinfo=UTC)
_NIL_ID = uuid.UUID(int=0)


def levels_from(level: str | None) -> list[str] | None:
    """The levels at ``level`` and above (None: every level).

    Raises:
        ClientError: ``level`` is not one of DEBUG, INFO, WARN, ERROR (any case).
    """
    if level is None or level == "":
        return None
    wanted = level.upper()
    if wanted not in LEVELS:
        raise ClientError(f"level: {level!r} is not a level; use one of {', '.join(LEVELS)}")
    return list(LEVELS[LEVELS.index(wanted) :])


class PageWanted(msgspec.Struct, frozen=True, kw_only=True):
    """A page's size and where it starts: after ``offset`` records, or after the record a ``cursor`` names."""

    limit: int
    offset: int = 0
    cursor: str | None = None


def _cursor_key(position: LogPosition) -> list[str]:
    return [position[0].isoformat(), str(position[1])]


def _cursor(row: TaskLogRow) -> str:
    """The cursor of the page after ``row``."""
    return encode_cursor(_cursor_key((row.timestamp, row.id)))


def _keyset(page: PageWanted) -> LogPosition | None:
    """Where the page starts (None: at the first record, or ``offset`` records in).

    Raises:
        ClientError: both an offset and a cursor, or a cursor this api did not write.
    """
    if page.cursor is None:
        return None
    if page.offset:
        raise ClientError("give either offset or cursor, not both")
    timestamp, record_id = decode_cursor(page.cursor, 2)
    try:
        return datetime.fromisoformat(str(timestamp)), uuid.UUID(str(record_id))
    except ValueError as err:
        raise ClientError("cursor: not a cursor returned by this list") from err


def text_line(record: asyncpg.Record) -> str:
    """``2026-01-01T10:00:00.123Z INFO  [step-id#attempt] message`` (a newline-terminated line)."""
    step = record["step_id"] or "-"
    where = step if record["attempt"] is None else f"{step}#{record['attempt']}"
    return f"{record['ts']} {record['level']:<5} [{where}] {record['message']}\n"


class LogService:
    """Reads the task logs of a tenant's executions and tasks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _page(self, filters: LogFilters, query: LogQuery, page: PageWanted) -> TaskLogPage:
        after = _keyset(page)
        if query.text is not None:
            return await self._search(filters, query.text, query.context, page, after)
        if query.context:
            raise ClientError("context: shows records around the matches of a search; give q too")
        async with self._pool.acquire() as connection:
            total = await count_task_logs(connection, filters)
            rows = await list_task_logs(connection, filters, limit=page.limit + 1, offset=page.offset, after=after)
        shown = rows[: page.limit]
        following = _cursor(shown[-1]) if len(rows) > page.limit else None
        logs = [to_log(row) for row in shown]
        return TaskLogPage(logs=logs, total=total, limit=page.limit, offset=page.offset, next_cursor=following)

    async def _search(
        self, filters: LogFilters, text: str, context: int, page: PageWanted, after: LogPosition | None
    ) -> TaskLogPage:
        """A page of matches (no total: counting every match would read the whole log), with their context."""
        if page.offset:
            raise ClientError("offset: a search pages with cursor (the nextCursor of the page before)")
        if context and page.limit > CONTEXT_MATCHES:
            raise ClientError(f"limit: at most {CONTEXT_MATCHES} matches a page when they come with context")
        async with self._pool.acquire() as connection:
            found = await search_task_logs(
                connection, filters, text, after=after, limit=page.limit, scan=SEARCH_SCAN_RECORDS
            )
            near = []
            if context and found.matches:
                near = await list_context(connection, filters, text, found.matches, context)
        following = None if found.next_position is None else encode_cursor(_cursor_key(found.next_position))
        return TaskLogPage(
            logs=with_context(found.matches, near), total=None, limit=page.limit, offset=0, next_cursor=following
        )

    async def list_for_task(
        self, tenant_id: uuid.UUID, task_id: uuid.UUID, query: LogQuery, page: PageWanted
    ) -> TaskLogPage:
        """One page of a task's log records, oldest first.

        Args:
            tenant_id: whose task.
            task_id: the step execution.
            query: the filters (its step is ignored: a task is one step's), a search and its context.
            page: its size and where it starts.

        Raises:
            ClientError: an unknown level, a bad cursor, or options that do not go together.
            NotFound: no such task in this tenant.
        """
        levels = levels_from(query.level)
        if not await self._pool.fetchval(
            "SELECT 1 FROM step_executions WHERE id = $1 AND tenant_id = $2", task_id, tenant_id
        ):
            raise NotFound(f"task {task_id} does not exist")
        filters = LogFilters(tenant_id=tenant_id, task_id=task_id, levels=levels, attempt=query.attempt)
        return await self._page(filters, query, page)

    async def list_for_execution(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, query: LogQuery, page: PageWanted
    ) -> TaskLogPage:
        """One page of an execution's log records (every step's, or one's), oldest first.

        Args:
            tenant_id: whose execution.
            execution_id: the execution.
            query: the filters, a search and its context.
            page: its size and where it starts.

        Raises:
            ClientError: an unknown level, a bad cursor, or options that do not go together.
            NotFound: no such execution in this tenant.
        """
        levels = levels_from(query.level)
        await self.require_execution(tenant_id, execution_id)
        filters = LogFilters(
            tenant_id=tenant_id,
            execution_id=execution_id,
            levels=levels,
            step_id=query.step_id,
            attempt=query.attempt,
        )
        return await self._page(filters, query, page)

    async def latest_for_execution(self, tenant_id: uuid.UUID, execution_id: uuid.UUID, limit: int) -> list[TaskLog]:
        """The ``limit`` most recent log records of an execution, oldest first (call after checking it exists)."""
        return [to_log(row) for row in await list_latest_task_logs(self._pool, tenant_id, execution_id, limit)]

    async def require_execution(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> None:
        """Check that the execution exists in this tenant.

        Raises:
            NotFound: it does not.
        """
        if not await self._pool.fetchval(
            "SELECT 1 FROM executions WHERE id = $1 AND tenant_id = $2", execution_id, tenant_id
        ):
            raise NotFound(f"execution {execution_id} does not exist")

    async def download(
        self, tenant_id: uuid.UUID, execution_id: uuid.UUID, output: DownloadFormat
    ) -> AsyncIterator[bytes]:
        """Every log record of an execution, oldest first, as chunks of a text or JSON-array file.

        The rows come a page at a time, each page read on a connection taken for that read alone: a client that
        reads slowly holds no connection while the chunks wait for it, however long the log. Each page starts
        after the last record sent, so records stored meanwhile with a later time are included, and memory
        stays flat. Call ``require_execution`` first: once streaming starts the status is sent.
        """
        if output == "text":
            async for page in self._pages(tenant_id, execution_id):
                yield "".join(map(text_line, page)).encode()
            return
        encoder = msgspec.json.Encoder()
        separator = b"\n"
        yield b"["
        async for page in self._pages(tenant_id, execution_id):
            chunk = bytearray()
            for record in page:
                chunk += separator
                separator = b",\n"
                chunk += encoder.encode(
                    TaskLogLine(
                        id=str(record["id"]),
                        level=record["level"],
                        message=record["message"],
                        timestamp=record["ts"],
                        step_id=record["step_id"],
                        task_id=None if record["task_id"] is None else str(record["task_id"]),
                        attempt=record["attempt"],
                        metadata=record["metadata"],
                    )
                )
            yield bytes(chunk)
        yield b"\n]\n"

    async def _pages(self, tenant_id: uuid.UUID, execution_id: uuid.UUID) -> AsyncIterator[list[asyncpg.Record]]:
        """The execution's log records in pages of at most DOWNLOAD_PAGE_ROWS rows and about DOWNLOAD_PAGE_BYTES."""
        after: tuple[datetime, uuid.UUID] = (_BEFORE_ANY_TIME, _NIL_ID)
        while True:
            page = await self._pool.fetch(
                *download_page_query(
                    tenant_id, execution_id, after=after, max_rows=DOWNLOAD_PAGE_ROWS, max_bytes=DOWNLOAD_PAGE_BYTES
                )
            )
            if not page:
                return
            yield page
            after = (page[-1]["timestamp"], page[-1]["id"])


def provide_log_service(pool: NamedDependency[asyncpg.Pool]) -> LogService:
    """A log reader for this request."""
    return LogService(pool)
