"""A stalled database answers 503 within the statement timeout instead of hanging the request."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
from flowline.settings import Settings

from tests.integration.api.clients import admin_client


async def test_a_request_stuck_behind_a_lock_answers_503_and_the_next_one_works(settings: Settings) -> None:
    async with admin_client(msgspec.structs.replace(settings, db_statement_timeout_seconds=0.5)) as api:
        assert (await api.get("workflows")).status_code == 200
        holder = await asyncpg.connect(settings.database_url)
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE workflows IN ACCESS EXCLUSIVE MODE")
                stuck = await api.get("workflows")
            assert stuck.status_code == 503, stuck.text
            assert stuck.headers["content-type"].startswith("application/problem+json")
        finally:
            await holder.close()
        assert (await api.get("workflows")).status_code == 200


async def test_a_request_that_finds_no_free_connection_answers_503_and_the_next_one_works(settings: Settings) -> None:
    tiny_pool = msgspec.structs.replace(
        settings, db_pool_min_size=1, db_pool_max_size=1, db_acquire_timeout_seconds=0.5
    )
    async with admin_client(tiny_pool) as api:
        assert (await api.get("workflows")).status_code == 200  # the key and the tenant are known from now on
        pool: asyncpg.Pool = api.app.state.pool
        # Were the request to wait for ever, the deadline fails the test instead of hanging it.
        async with pool.acquire() as held, asyncio.timeout(60):
            assert held is not None
            starved = await api.get("workflows")
        assert starved.status_code == 503, starved.text
        assert starved.headers["content-type"].startswith("application/problem+json")
        assert starved.headers["retry-after"] == "1"
        assert "database connection" in starved.json()["detail"]
        assert (await api.get("workflows")).status_code == 200
