"""A task over its log limits: the api's download and its task stream show the same records and the same notice."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
from flowline.db.events import NewEvent, append_events
from flowline.domain.snapshots import TaskSnapshot
from flowline.domain.task_log_limits import DROPPED_KEY, LogLimits, dropped_notice_id
from flowline.messages import TaskLogBatch, TaskLogRecord, encode
from flowline.runtime.service import Runtime
from flowline.settings import Settings, load_settings
from flowline_api.domain.streams.hub import StreamHub
from flowline_api.domain.streams.service import StreamSession, StreamTimings
from flowline_log_ingest.ingest import LogWriter
from flowline_log_ingest.metrics import LogIngestMetrics
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from tests.support import define_and_start


@pytest.fixture
def settings(settings_env: dict[str, str]) -> Settings:
    """Five records a task, and messages cut at 1 KiB."""
    return load_settings(
        {**settings_env, "FLOWLINE_TASK_LOG_MAX_RECORDS": "5", "FLOWLINE_TASK_LOG_MESSAGE_MAX_BYTES": "1024"}
    )


@pytest.mark.parametrize(
    ("stored_first", "stored_at_all"),
    [(False, True), (True, True), (False, False)],
    ids=["live", "stored-first", "not-stored-yet"],
)
async def test_the_task_stream_shows_what_the_download_shows(
    api: AsyncTestClient,  # type: ignore[type-arg]
    runtime: Runtime,
    settings: Settings,
    stored_first: bool,
    stored_at_all: bool,
) -> None:
    """Live: the stream holds back the records past the cut-off before log-ingest stores any. Stored first: it
    reads the five records and the WARN record that log-ingest stored before the stream opened. Not stored yet:
    log-ingest has not come to them when the stream ends, which then sends a WARN record of its own, the same."""
    pool = runtime.pool
    started = await define_and_start(
        pool, settings, "demo.chatty", {"steps": [{"id": "work", "type": "action", "action": "core.noop"}]}, {}
    )
    tenant_id = await pool.fetchval("SELECT tenant_id FROM executions WHERE id = $1", started.id)
    task_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO step_executions (id, tenant_id, execution_id, step_id, position, step_type, status) "
        "VALUES ($1, $2, $3, 'work', 0, 'action', 'running')",
        task_id,
        tenant_id,
        started.id,
    )

    def record(message: str) -> TaskLogRecord:
        return TaskLogRecord(
            tenant_id=tenant_id, execution_id=started.id, task_id=task_id, step_id="work", attempt=1, message=message
        )

    batches = [
        TaskLogBatch(
            tenant_id=tenant_id,
            execution_id=started.id,
            records=[record(f"line {n}" if n != 2 else "x" * 5000) for n in range(first, first + 4)],
        )
        for first in (0, 4, 8)
    ]
    # log-ingest and the stream each receive the same records, in the same order.
    writer = LogWriter(pool, LogIngestMetrics(CollectorRegistry()), LogLimits.from_settings(settings))
    if stored_first:
        for batch in batches:
            await writer.write([batch])
    hub = StreamHub(settings)
    hub.start()
    try:
        subscription = await hub.subscribe(tenant_id, logs=True)
        session = StreamSession(
            pool, subscription, StreamTimings(60, 60), root=started.id, positions={started.id: 0}, task_id=task_id
        )
        shown: list[dict[str, Any]] = []

        async def collect() -> None:
            async for message in session.messages([started.id]):
                data = msgspec.json.decode(str(message.data))
                if data.get("type") == "Log":
                    shown.append(data)

        stream = asyncio.create_task(collect())
        async with asyncio.timeout(60):
            # Until the stream has counted every record past the cut-off (read as stored, or held back live).
            if stored_first:
                while session._log_quota.dropped < 7:
                    await asyncio.sleep(0.05)
            else:
                while started.id not in subscription.executions:  # the stream follows the execution
                    await asyncio.sleep(0.05)
                for batch in batches:
                    await runtime.producer.send_and_wait(settings.topics.logs, encode(batch), key=started.id.bytes)
                while session._log_quota.dropped < 7:
                    await asyncio.sleep(0.05)
            if stored_at_all and not stored_first:
                for batch in batches:
                    await writer.write([batch])
            async with pool.acquire() as connection, connection.transaction():
                rows = await append_events(
                    connection,
                    tenant_id=tenant_id,
                    execution_id=started.id,
                    after_sequence=1,
                    events=[NewEvent("TASK_COMPLETED", TaskSnapshot(status="completed"), "work", task_id)],
                    topic=settings.topics.events,
                )
            await runtime.producer.send_and_wait(rows[0].topic, rows[0].payload, key=rows[0].key)
            await stream
    finally:
        await hub.stop()

    if not stored_at_all:  # what log-ingest stores afterwards is what the stream showed
        for batch in batches:
            await writer.write([batch])
    download = (await api.get(f"executions/{started.id}/logs/download", params={"format": "json"})).json()
    # (A stream leaves empty metadata out; the download writes it as {}.)
    assert [(log["id"], log["message"], log.get("metadata")) for log in shown] == [
        (log["id"], log["message"], log["metadata"] or None) for log in download
    ]
    assert len(download) == 6
    assert download[2]["message"].endswith(" … [cut: 5000 bytes in all]")
    notice = download[-1]
    assert notice["id"] == str(dropped_notice_id(task_id)) and notice["level"] == "WARN"
    assert notice["metadata"] == {DROPPED_KEY: 7}
    assert notice["message"].startswith("7 log records of this task were dropped")
