"""Writes task log records to PostgreSQL in batches, idempotently by record id."""

from __future__ import annotations

import asyncpg
from flowline.messages import LogMessage, TaskLogBatch

from flowline_log_ingest.metrics import LogIngestMetrics


class LogWriter:
    """Inserts each consumed batch with one statement; a redelivered record changes nothing."""

    def __init__(self, pool: asyncpg.Pool, metrics: LogIngestMetrics) -> None:
        self._pool = pool
        self._metrics = metrics

    async def write(self, messages: list[LogMessage]) -> None:
        """Insert the records of ``messages``; the consumer commits their offsets once this returns."""
        records = [
            record
            for message in messages
            for record in (message.records if isinstance(message, TaskLogBatch) else [message])
        ]
        written = await self._pool.fetchval(
            """
            WITH inserted AS (
                INSERT INTO task_logs (id, tenant_id, execution_id, task_id, step_id, attempt, level, message,
                    timestamp, metadata)
                SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::int[],
                    $7::text[], $8::text[], $9::timestamptz[], $10::jsonb[])
                ON CONFLICT (id) DO NOTHING
                RETURNING 1
            )
            SELECT count(*) FROM inserted
            """,
            [record.id for record in records],
            [record.tenant_id for record in records],
            [record.execution_id for record in records],
            [record.task_id for record in records],
            [record.step_id for record in records],
            [record.attempt for record in records],
            [record.level for record in records],
            [record.message for record in records],
            [record.timestamp for record in records],
            [record.metadata for record in records],
        )
        self._metrics.records.labels("written").inc(written)
        self._metrics.records.labels("duplicate").inc(len(records) - written)
        self._metrics.batch_records.observe(len(records))
