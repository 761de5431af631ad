"""Log downloads read slowly hold no database connection: more slow readers than the pool, and the api still answers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import httpx
import msgspec
from flowline.settings import Settings

from tests.integration.api.clients import served_api
from tests.support import bearer, define_and_start

POOL_SIZE = 3
READERS = POOL_SIZE + 2
RECORDS = 4_000
# Each download is far more than the sockets between a stalled reader and the server hold (16 MB), so a
# server that holds a connection while it writes would hold it until the reader reads on.
MESSAGE = "x" * 4_000


async def _seed_large_log(pool: asyncpg.Pool, settings: Settings) -> uuid.UUID:
    started = await define_and_start(
        pool, settings, "demo.chatty", {"steps": [{"id": "talk", "type": "action", "action": "core.noop"}]}, {}
    )
    await pool.execute(
        "INSERT INTO task_logs (id, tenant_id, execution_id, step_id, attempt, level, message, timestamp) "
        "SELECT gen_random_uuid(), e.tenant_id, e.id, 'talk', 1, 'INFO', 'record ' || n || ' ' || $2, "
        # Every tenth record shares its timestamp with the one before: pages must break ties by id.
        "'2026-03-01T00:00:00Z'::timestamptz + (n - n % 10 / 9) * interval '1 millisecond' "
        "FROM executions e, generate_series(1, $3) n WHERE e.id = $1",
        started.id,
        MESSAGE,
        RECORDS,
    )
    return started.id


async def test_slow_readers_of_log_downloads_leave_the_pool_to_other_requests(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    execution_id = await _seed_large_log(pool, settings)
    small_pool = msgspec.structs.replace(settings, db_pool_min_size=1, db_pool_max_size=POOL_SIZE)
    async with (
        served_api(small_pool) as (url, key),
        httpx.AsyncClient(base_url=f"{url}/api/v1/tenants/dev/", headers=bearer(key), timeout=120) as client,
        contextlib.AsyncExitStack() as downloads,
    ):
        # Each reader gets the head of its answer, then reads nothing (httpx reads a body only when asked).
        readers = [
            await downloads.enter_async_context(client.stream("GET", f"executions/{execution_id}/logs/download"))
            for _ in range(READERS)
        ]
        assert [reader.status_code for reader in readers] == [200] * READERS

        # Another request still gets a connection, while every download is under way.
        async with asyncio.timeout(120):
            other = await client.get(f"executions/{execution_id}")
        assert other.status_code == 200, other.text
        assert not any(reader.is_stream_consumed for reader in readers)

        # Then each reader reads on and gets the whole log, each record once, in time order.
        for reader in readers:
            async with asyncio.timeout(120):
                lines = (await reader.aread()).decode().splitlines()
            assert len(lines) == RECORDS
            assert all(line.endswith(MESSAGE) for line in lines)
            numbers = [int(line.partition(" record ")[2].partition(" ")[0]) for line in lines]
            assert sorted(numbers) == list(range(1, RECORDS + 1))  # ties in either order
            timestamps = [line.partition(" ")[0] for line in lines]
            assert timestamps == sorted(timestamps)
