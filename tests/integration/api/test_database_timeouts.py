"""A stalled database answers 503 within the statement timeout instead of hanging the request."""

from __future__ import annotations

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
