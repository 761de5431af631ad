"""Task log records: stored within each task's limits, with the record that reports a cut-off; read by task and run.

log-ingest copies a batch into its session's staging table (``STAGING``), checks it and makes sure of its tasks' usage
rows (``create_staged_usage``) and moves it on with ``store_staged_records`` in the same transaction
(docs/architecture.md §6.2). Per task (``task_log_usage``, locked for the statement's transaction, so several
log-ingest processes count one task in turn), records are kept in the order they came until the task reaches its
record or byte limit; later ones are dropped and counted, and one WARN record per task
(``task_log_limits.dropped_notice_id``) says how many, rewritten as the count grows.

A redelivered record changes nothing: one already stored meets its key (id, timestamp), and a dropped one is
counted only the first time its message (``message_id``) is seen, which the inbox remembers.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from flowline.db.log_partitions import UNFINISHED_STATUSES
from flowline.db.sql import bind, typed
from flowline.domain.task_log_limits import DROPPED_KEY, DROPPED_NOTICE, LogLimits

# The inbox consumer under which messages that had records dropped are remembered.
DROPPED_CONSUMER = "log-ingest:dropped"
# The record that reports a task's dropped records comes after every record it kept: it has the time of the first
# one dropped or, if a record kept is stamped later (another clock), just after that (``last_at``).
# ``ordinal``: the record's place in the batch (the order its task's records count in); ``task_key``: whose
# limit it counts against; ``notice_id``: the id of that task's WARN. A message counts its octet_length (UTF-8).
# Metadata travels as JSON text (binary COPY has no encoder for the pool's jsonb codec) and is cast on insert.
STAGING = """
CREATE TEMP TABLE IF NOT EXISTS task_logs_incoming (
    id uuid, tenant_id uuid, execution_id uuid, task_id uuid, step_id text, attempt int, level text, message text,
    timestamp timestamptz, metadata text, message_id uuid, ordinal int, task_key uuid, notice_id uuid
) ON COMMIT DELETE ROWS
"""
STAGING_COLUMNS = (
    "id",
    "tenant_id",
    "execution_id",
    "task_id",
    "step_id",
    "attempt",
    "level",
    "message",
    "timestamp",
    "metadata",
    "message_id",
    "ordinal",
    "task_key",
    "notice_id",
)
# Executions the staged records name that their tenant does not have (or that do not exist), looked up once each;
# with none, each staged task's usage row is made sure of, in the same statement (a round trip less per batch).
_CREATE_USAGE = """
WITH foreign_executions AS (
    SELECT DISTINCT execution_id, tenant_id FROM task_logs_incoming i
    WHERE NOT EXISTS (SELECT FROM executions e WHERE e.id = i.execution_id AND e.tenant_id = i.tenant_id)
), created AS (
    INSERT INTO task_log_usage (task_key, tenant_id, execution_id)
    SELECT DISTINCT ON (task_key) task_key, tenant_id, execution_id FROM task_logs_incoming
    WHERE NOT EXISTS (SELECT FROM foreign_executions)
    ORDER BY task_key
    ON CONFLICT (task_key) DO NOTHING
)
SELECT count(*) FROM foreign_executions
"""
_INSERT_COLUMNS = "id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp, metadata"
_INSERT_VALUES = "id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp, metadata::jsonb"
# A statement of its own after the usage rows' insert, so that it sees (and locks) rows another process committed
# meanwhile; locked in task order (the lock is taken above the sort), so that two batches sharing tasks never
# deadlock. ``locked`` says which tasks are near their limit: those whose staged records, were every one new, might
# not all fit (read from the row as locked). The records of the other tasks, with room for all of them, are stored
# by the same statement, each unless it is already (a redelivery); the final SELECT reads every locked row, so
# every lock is taken whatever the plan.
_STORE_ROOMY = f"""
WITH batch AS (
    SELECT task_key, count(*) AS records, sum(octet_length(message)) AS bytes FROM task_logs_incoming GROUP BY task_key
), locked AS (
    SELECT u.task_key,
        u.dropped > 0 OR u.records + b.records > :max_records::bigint OR u.bytes + b.bytes > :max_bytes::bigint
            AS near_limit
    FROM task_log_usage u JOIN batch b ON b.task_key = u.task_key
    ORDER BY u.task_key FOR UPDATE OF u
), written AS (
    INSERT INTO task_logs ({_INSERT_COLUMNS})
    SELECT {_INSERT_VALUES} FROM task_logs_incoming i
    WHERE NOT EXISTS (SELECT FROM locked l WHERE l.near_limit AND l.task_key = i.task_key)
    ON CONFLICT (id, timestamp) DO NOTHING
    RETURNING coalesce(task_id, execution_id) AS task_key, octet_length(message) AS bytes, timestamp
), per_task AS (
    SELECT task_key, count(*) AS records, sum(bytes) AS bytes, max(timestamp) AS last_at FROM written
    GROUP BY task_key
), usage AS (
    UPDATE task_log_usage u SET records = u.records + p.records, bytes = u.bytes + p.bytes,
        last_at = greatest(u.last_at, p.last_at), updated_at = now()
    FROM per_task p WHERE u.task_key = p.task_key
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS written,
    (SELECT coalesce(array_agg(task_key ORDER BY task_key) FILTER (WHERE near_limit), '{{}}') FROM locked)
        AS near_limit
"""
# The records of tasks near their limit, in one statement so that every part reads the usage as locked. ``ranked``
# decides, per task in arrival order, which new records fit: both running totals within the limits and nothing
# dropped before, so what is kept is a prefix. Whether a record is new is asked of its own partition's key, one
# record at a time (the LATERAL ... LIMIT keeps the planner from joining the whole table).
_STORE_NEAR_LIMIT = f"""
WITH fresh AS (
    SELECT DISTINCT ON (i.id) i.* FROM task_logs_incoming i
    LEFT JOIN LATERAL (
        SELECT true AS stored FROM task_logs t WHERE t.id = i.id AND t.timestamp = i.timestamp LIMIT 1
    ) s ON true
    WHERE i.task_key = ANY(:near_limit::uuid[]) AND s.stored IS NULL
    ORDER BY i.id, i.ordinal
), ranked AS (
    SELECT f.*, octet_length(f.message) AS bytes, u.dropped = 0
        AND u.records + count(*) OVER running <= :max_records::bigint
        AND u.bytes + sum(octet_length(f.message)) OVER running <= :max_bytes::bigint AS kept
    FROM fresh f JOIN task_log_usage u ON u.task_key = f.task_key
    WINDOW running AS (PARTITION BY f.task_key ORDER BY f.ordinal)
), written AS (
    INSERT INTO task_logs ({_INSERT_COLUMNS})
    SELECT {_INSERT_VALUES} FROM ranked WHERE kept
    RETURNING id
), claimed AS (
    INSERT INTO inbox (consumer, message_id)
    SELECT DISTINCT :consumer::text, message_id FROM ranked WHERE NOT kept
    ON CONFLICT DO NOTHING
    RETURNING message_id
), newly_dropped AS (
    SELECT * FROM ranked WHERE NOT kept AND message_id IN (SELECT message_id FROM claimed)
), per_task AS (
    SELECT task_key,
        count(*) FILTER (WHERE kept) AS records,
        coalesce(sum(bytes) FILTER (WHERE kept), 0) AS bytes,
        max(timestamp) FILTER (WHERE kept) AS last_at,
        (SELECT count(*) FROM newly_dropped d WHERE d.task_key = r.task_key) AS dropped
    FROM ranked r GROUP BY task_key
), first_dropped AS (
    SELECT DISTINCT ON (task_key) * FROM newly_dropped ORDER BY task_key, ordinal
), usage AS (
    UPDATE task_log_usage u SET records = u.records + p.records, bytes = u.bytes + p.bytes,
        dropped = u.dropped + p.dropped, last_at = greatest(u.last_at, p.last_at), updated_at = now(),
        -- after every record kept (a later clock may have stamped one later than the first one dropped)
        notice_at = coalesce(u.notice_at, greatest(f.timestamp, u.last_at + :after, p.last_at + :after))
    FROM per_task p LEFT JOIN first_dropped f ON f.task_key = p.task_key
    WHERE u.task_key = p.task_key
    RETURNING u.task_key, u.dropped, u.notice_at
), noticed AS (
    INSERT INTO task_logs ({_INSERT_COLUMNS})
    SELECT f.notice_id, f.tenant_id, f.execution_id, f.task_id, f.step_id, f.attempt, 'WARN',
        format(:notice::text, u.dropped, :max_records::bigint, :max_bytes::bigint), u.notice_at,
        jsonb_build_object(:dropped_key::text, u.dropped)
    FROM usage u JOIN first_dropped f ON f.task_key = u.task_key
    ON CONFLICT (id, timestamp) DO UPDATE SET message = excluded.message, metadata = excluded.metadata
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS written, (SELECT count(*) FROM newly_dropped) AS dropped,
    (SELECT count(*) FROM noticed) AS noticed
"""


async def create_staged_usage(connection: asyncpg.Connection) -> int:
    """Make sure each staged task has its usage row, unless the batch names an execution its tenant does not have.

    Returns:
        How many executions the staged batch names that are not of the tenant its records name (or do not
        exist): 0 when the usage rows were made sure of.
    """
    foreign: int = await connection.fetchval(_CREATE_USAGE)
    return foreign


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """What one batch came to: records written, records dropped (first counted now) and notices written."""

    written: int
    dropped: int
    noticed: int


async def store_staged_records(connection: asyncpg.Connection, limits: LogLimits) -> Stored:
    """Move the staged batch into ``task_logs`` within each task's limits; call in the staging transaction.

    Call ``create_staged_usage`` first, in a statement of its own. Most tasks are far from their limits: their
    records are inserted as they come, skipping those stored before, by the statement that locks the tasks'
    usage. Only the records of a task that might not fit go through the exact count, record by record.
    """
    limit_params = {"max_records": limits.task_max_records, "max_bytes": limits.task_max_bytes}
    roomy = await connection.fetchrow(*bind(_STORE_ROOMY, limit_params))
    assert roomy is not None
    near_limit: list[uuid.UUID] = roomy["near_limit"]
    if not near_limit:
        return Stored(written=roomy["written"], dropped=0, noticed=0)
    exact = await connection.fetchrow(
        *bind(
            _STORE_NEAR_LIMIT,
            limit_params,
            near_limit=near_limit,
            after=timedelta(microseconds=1),
            consumer=DROPPED_CONSUMER,
            notice=DROPPED_NOTICE,
            dropped_key=DROPPED_KEY,
        )
    )
    assert exact is not None
    return Stored(written=roomy["written"] + exact["written"], dropped=exact["dropped"], noticed=exact["noticed"])


async def delete_stale_usage(connection: asyncpg.Connection | asyncpg.Pool, *, before: datetime, limit: int) -> int:
    """Forget up to ``limit`` tasks' log usage not updated since ``before`` whose execution is finished or gone.

    Returns how many were forgotten (fewer than ``limit``: none is left). A task that logs again starts counting
    anew, which only a task of an unfinished execution could, and those are kept.
    """
    deleted: int = await connection.fetchval(
        *bind(
            "WITH gone AS (DELETE FROM task_log_usage WHERE task_key IN ("
            "SELECT u.task_key FROM task_log_usage u WHERE u.updated_at < :before AND NOT EXISTS ("
            "SELECT FROM executions e WHERE e.id = u.execution_id AND e.status = ANY(:unfinished::text[])) "
            "LIMIT :limit) RETURNING 1) SELECT count(*) FROM gone",
            before=before,
            unfinished=list(UNFINISHED_STATUSES),
            limit=limit,
        )
    )
    return deleted


# Reading -------------------------------------------------------------------------------------------------------
# Every read names a task or an execution, whose index (task_id or execution_id, then timestamp) each partition
# has: a read probes each partition's index and merges them in order, never scanning a partition.

LOG_COLUMNS = "id, level, message, timestamp, step_id, attempt"
_TEXT_TIMESTAMP = """to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


class TaskLogRow(msgspec.Struct, frozen=True, kw_only=True):
    """One stored log record, as the api's pages show it."""

    id: uuid.UUID
    level: str
    message: str
    timestamp: datetime
    step_id: str | None
    attempt: int | None


class LogFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Which records of a tenant a page reads: one task's or one execution's, optionally by levels, step and attempt.

    Each option is a condition on the rows the task's or the execution's index finds, never a scan of its own.
    """

    tenant_id: uuid.UUID
    task_id: uuid.UUID | None = None
    execution_id: uuid.UUID | None = None
    levels: list[str] | None = None
    step_id: str | None = None
    attempt: int | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause and its parameters."""
        conditions = ["tenant_id = :tenant_id"]
        params: dict[str, Any] = {"tenant_id": self.tenant_id}
        if self.task_id is not None:
            conditions.append("task_id = :task_id")
            params["task_id"] = self.task_id
        if self.execution_id is not None:
            conditions.append("execution_id = :execution_id")
            params["execution_id"] = self.execution_id
        if self.levels is not None:
            conditions.append("level = ANY(:levels::text[])")
            params["levels"] = self.levels
        if self.step_id is not None:
            conditions.append("step_id = :step_id")
            params["step_id"] = self.step_id
        if self.attempt is not None:
            conditions.append("attempt = :attempt")
            params["attempt"] = self.attempt
        if self.task_id is None and self.execution_id is None:
            raise ValueError("a log read names a task or an execution")
        return " AND ".join(conditions), params


# Where a keyset page starts: after this record's (timestamp, id), in the order every read returns records.
LogPosition = tuple[datetime, uuid.UUID]
# ``timestamp >=`` lets the index find the first record after the position; the row comparison breaks ties.
AFTER_POSITION = "timestamp >= :after_timestamp AND (timestamp, id) > (:after_timestamp, :after_id)"


def after_position(after: LogPosition | None) -> tuple[str, dict[str, Any]]:
    """The condition keeping the records after ``after`` (none: every record), and its parameters."""
    if after is None:
        return "true", {}
    return AFTER_POSITION, {"after_timestamp": after[0], "after_id": after[1]}


def list_task_logs_query(
    filters: LogFilters, *, limit: int, offset: int, after: LogPosition | None = None
) -> list[Any]:
    """The statement of one page of records, oldest first (after ``after``, then skipping ``offset``)."""
    where, params = filters.where()
    keyset, position = after_position(after)
    return bind(
        f"SELECT {LOG_COLUMNS} FROM task_logs WHERE {where} AND {keyset} "
        "ORDER BY timestamp, id LIMIT :limit OFFSET :offset",
        params,
        position,
        limit=limit,
        offset=offset,
    )


def count_task_logs_query(filters: LogFilters) -> list[Any]:
    """The statement counting the records ``filters`` select, and its arguments."""
    where, params = filters.where()
    return bind(f"SELECT count(*) FROM task_logs WHERE {where}", params)


def latest_task_logs_query(tenant_id: uuid.UUID, execution_id: uuid.UUID, limit: int) -> list[Any]:
    """The statement of an execution's ``limit`` most recent records, newest first, and its arguments."""
    return bind(
        f"SELECT {LOG_COLUMNS} FROM task_logs WHERE execution_id = :execution_id AND tenant_id = :tenant_id "
        "ORDER BY timestamp DESC, id DESC LIMIT :limit",
        execution_id=execution_id,
        tenant_id=tenant_id,
        limit=limit,
    )


# A download's page: the records after (after_timestamp, after_id) in (timestamp, id) order, up to ``max_rows``
# rows and the first to reach ``max_bytes`` of messages and metadata (always at least one).
_DOWNLOAD_PAGE = f"""
SELECT id, level, message, timestamp, {_TEXT_TIMESTAMP} AS ts, step_id, task_id, attempt, metadata FROM (
    SELECT *, sum(octet_length(message) + coalesce(octet_length(metadata::text), 0))
        OVER (ORDER BY timestamp, id) AS bytes_through
    FROM task_logs
    WHERE execution_id = :execution_id AND tenant_id = :tenant_id AND {AFTER_POSITION}
    ORDER BY timestamp, id
    LIMIT :max_rows
) page
WHERE bytes_through - octet_length(message) - coalesce(octet_length(metadata::text), 0) < :max_bytes
ORDER BY timestamp, id
"""


def download_page_query(
    tenant_id: uuid.UUID,
    execution_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID],
    max_rows: int,
    max_bytes: int,
) -> list[Any]:
    """The statement of one page of an execution's records for a download, oldest first, and its arguments.

    Its rows have ``ts``, the timestamp as text (``2026-01-01T10:00:00.123Z``), besides the record's columns.
    """
    return bind(
        _DOWNLOAD_PAGE,
        execution_id=execution_id,
        tenant_id=tenant_id,
        after_timestamp=after[0],
        after_id=after[1],
        max_rows=max_rows,
        max_bytes=max_bytes,
    )


async def list_task_logs(
    connection: asyncpg.Connection | asyncpg.Pool,
    filters: LogFilters,
    *,
    limit: int,
    offset: int,
    after: LogPosition | None = None,
) -> list[TaskLogRow]:
    """One page of the records ``filters`` select, oldest first, after ``after`` (a keyset page) if given."""
    statement = list_task_logs_query(filters, limit=limit, offset=offset, after=after)
    return typed(await connection.fetch(*statement), TaskLogRow)


async def count_task_logs(connection: asyncpg.Connection | asyncpg.Pool, filters: LogFilters) -> int:
    """How many records ``filters`` select."""
    count: int = await connection.fetchval(*count_task_logs_query(filters))
    return count


async def list_latest_task_logs(
    connection: asyncpg.Connection | asyncpg.Pool, tenant_id: uuid.UUID, execution_id: uuid.UUID, limit: int
) -> list[TaskLogRow]:
    """The ``limit`` most recent records of an execution, oldest first."""
    rows = typed(await connection.fetch(*latest_task_logs_query(tenant_id, execution_id, limit)), TaskLogRow)
    return rows[::-1]
