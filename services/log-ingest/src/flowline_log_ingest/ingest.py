"""Writes task log records to PostgreSQL in batches, idempotently by record id, within each task's limits."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
from flowline.db.task_logs import STAGING, STAGING_COLUMNS, create_staged_usage, store_staged_records
from flowline.domain.task_log_limits import LogLimits, cut_record, dropped_notice_id, task_key
from flowline.kafka.consumer import MessageRefused
from flowline.messages import LogMessage, TaskLogBatch

from flowline_log_ingest.metrics import LogIngestMetrics

# COPY cannot skip a record already stored, so each batch is copied into this session's staging table
# (flowline.db.task_logs.STAGING) and moved on from there. The table lives as long as the pooled connection, its
# rows until the commit. The service's pool creates it once on every new connection (``session_setup``); on
# another pool (tests) the writer makes sure of it before every batch.
_json = msgspec.json.Encoder()


class LogWriter:
    """Writes each consumed batch in one transaction; a redelivered record changes nothing."""

    def __init__(
        self, pool: asyncpg.Pool, metrics: LogIngestMetrics, limits: LogLimits, *, staging_ready: bool = False
    ) -> None:
        """Write through ``pool``; ``staging_ready`` when its connections were made with ``STAGING``."""
        self._pool = pool
        self._metrics = metrics
        self._limits = limits
        self._staging_ready = staging_ready

    async def write(self, messages: list[LogMessage]) -> None:
        """Insert the records of ``messages``; the consumer commits their offsets once this returns.

        Raises:
            MessageRefused: a record names an execution its tenant does not have; nothing was written (the
                consumer writes the batch again one message at a time, and dead-letters the refused ones).
        """
        max_bytes = self._limits.message_max_bytes
        rows: list[tuple[object, ...]] = []
        notice_ids: dict[uuid.UUID, uuid.UUID] = {}
        for message in messages:
            for record in message.records if isinstance(message, TaskLogBatch) else [message]:
                metadata = _json.encode(record.metadata)
                if len(record.message) * 4 > max_bytes or len(metadata) > max_bytes:
                    # Another producer's records are cut here as the executor cuts its own (a no-op for those).
                    record = cut_record(record, max_bytes)
                    metadata = _json.encode(record.metadata)
                key = task_key(record.task_id, record.execution_id)
                if key not in notice_ids:
                    notice_ids[key] = dropped_notice_id(key)
                rows.append(
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
                        metadata.decode(),
                        message.id,
                        len(rows),
                        key,
                        notice_ids[key],
                    )
                )
        # COPY's binary rows cost far less to encode than one array parameter per column (asyncpg checks every
        # array element's type), and the log-ingest process spends most of its time encoding.
        async with self._pool.acquire() as connection, connection.transaction():
            if not self._staging_ready:
                await connection.execute(STAGING)
            await connection.copy_records_to_table("task_logs_incoming", records=rows, columns=STAGING_COLUMNS)
            foreign = await create_staged_usage(connection)
            if foreign:
                raise MessageRefused(f"records name {foreign} execution(s) their tenant does not have")
            stored = await store_staged_records(connection, self._limits)
        self._metrics.records.labels("written").inc(stored.written)
        self._metrics.records.labels("dropped").inc(stored.dropped)
        self._metrics.records.labels("duplicate").inc(len(rows) - stored.written - stored.dropped)
        self._metrics.batch_records.observe(len(rows))
