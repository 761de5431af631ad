"""Writes task log records to PostgreSQL in batches, idempotently by record id."""

from __future__ import annotations

import asyncpg
import msgspec
from flowline.kafka.consumer import MessageRefused
from flowline.messages import LogMessage, TaskLogBatch

from flowline_log_ingest.metrics import LogIngestMetrics

COLUMNS = (
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
)
# COPY cannot skip a record already stored, so each batch is copied into this session's staging table and moved
# on with INSERT … ON CONFLICT. The table lives as long as the pooled connection, its rows until the commit. The
# service's pool creates it once on every new connection (``session_setup``); on another pool (tests) the writer
# makes sure of it before every batch.
# Metadata travels as JSON text (binary COPY has no encoder for the pool's jsonb codec) and is cast on insert.
STAGING = """
CREATE TEMP TABLE IF NOT EXISTS task_logs_incoming (
    id uuid, tenant_id uuid, execution_id uuid, task_id uuid, step_id text, attempt int, level text, message text,
    timestamp timestamptz, metadata text
) ON COMMIT DELETE ROWS
"""
# A record is stored only for an execution of the tenant it names, looked up once per execution of the batch:
# when any names another tenant's (or none), nothing is inserted and ``foreign`` says how many executions did.
INSERT_NEW = """
WITH foreign_executions AS (
    SELECT DISTINCT execution_id, tenant_id FROM task_logs_incoming i
    WHERE NOT EXISTS (SELECT FROM executions e WHERE e.id = i.execution_id AND e.tenant_id = i.tenant_id)
), inserted AS (
    INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp, metadata)
    SELECT id, tenant_id, execution_id, task_id, step_id, attempt, level, message, timestamp, metadata::jsonb
    FROM task_logs_incoming
    WHERE NOT EXISTS (SELECT FROM foreign_executions)
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS written, (SELECT count(*) FROM foreign_executions) AS foreign
"""
_json = msgspec.json.Encoder()


class LogWriter:
    """Writes each consumed batch in one transaction; a redelivered record changes nothing."""

    def __init__(self, pool: asyncpg.Pool, metrics: LogIngestMetrics, *, staging_ready: bool = False) -> None:
        """Write through ``pool``; ``staging_ready`` when its connections were made with ``STAGING``."""
        self._pool = pool
        self._metrics = metrics
        self._staging_ready = staging_ready

    async def write(self, messages: list[LogMessage]) -> None:
        """Insert the records of ``messages``; the consumer commits their offsets once this returns.

        Raises:
            MessageRefused: a record names an execution its tenant does not have; nothing was written (the
                consumer writes the batch again one message at a time, and dead-letters the refused ones).
        """
        rows = [
            (
                record.id,
                record.tenant_id,
                record.execution_id,
                record.task_id,
                record.step_id,
                record.attempt,
                record.level,
                record.message,
                record.timestamp,
                _json.encode(record.metadata).decode(),
            )
            for message in messages
            for record in (message.records if isinstance(message, TaskLogBatch) else [message])
        ]
        # COPY's binary rows cost far less to encode than one array parameter per column (asyncpg checks every
        # array element's type), and the log-ingest process spends most of its time encoding.
        async with self._pool.acquire() as connection, connection.transaction():
            if not self._staging_ready:
                await connection.execute(STAGING)
            await connection.copy_records_to_table("task_logs_incoming", records=rows, columns=COLUMNS)
            counts = await connection.fetchrow(INSERT_NEW)
            if counts["foreign"]:
                raise MessageRefused(f"records name {counts['foreign']} execution(s) their tenant does not have")
        written = counts["written"]
        self._metrics.records.labels("written").inc(written)
        self._metrics.records.labels("duplicate").inc(len(rows) - written)
        self._metrics.batch_records.observe(len(rows))
