"""An api process trusts a key it verified for FLOWLINE_API_KEY_CACHE_SECONDS, and forgets one it revokes at once."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec
from flowline.domain.credentials import parse_key
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.support import api_key, bearer

WORKFLOWS = "/api/v1/tenants/dev/workflows"


async def _revoke_elsewhere(pool: asyncpg.Pool, key: str) -> None:
    """Revoke ``key`` as another api process or ``flowline-api admin revoke-api-key`` would: in the database only."""
    parsed = parse_key(key)
    assert parsed is not None
    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", parsed[0])


async def test_a_key_revoked_elsewhere_is_refused_once_its_cache_entry_expires(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    key = await api_key(settings.database_url, role="viewer")
    app = create_app(msgspec.structs.replace(settings, api_key_cache_seconds=0.3))
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        assert (await client.get(WORKFLOWS, headers=bearer(key))).status_code == 200
        await _revoke_elsewhere(pool, key)
        deadline = time.monotonic() + 10
        while (status := (await client.get(WORKFLOWS, headers=bearer(key))).status_code) == 200:
            assert time.monotonic() < deadline, "the revoked key was still accepted after 10 s"
            await asyncio.sleep(0.05)
        assert status == 401


async def test_a_verified_key_is_not_looked_up_again_within_its_time(settings: Settings, pool: asyncpg.Pool) -> None:
    key = await api_key(settings.database_url, role="viewer")
    app = create_app(msgspec.structs.replace(settings, api_key_cache_seconds=600))
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        assert (await client.get(WORKFLOWS, headers=bearer(key))).status_code == 200
        await _revoke_elsewhere(pool, key)  # unseen by this process for now: the price of the cache
        assert (await client.get(WORKFLOWS, headers=bearer(key))).status_code == 200


async def test_a_key_revoked_through_this_process_is_refused_at_once(settings: Settings, pool: asyncpg.Pool) -> None:
    admin, key = await api_key(settings.database_url), await api_key(settings.database_url, role="viewer")
    app = create_app(msgspec.structs.replace(settings, api_key_cache_seconds=600))
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        assert (await client.get(WORKFLOWS, headers=bearer(key))).status_code == 200
        parsed = parse_key(key)
        assert parsed is not None
        revoked = await client.delete(f"/api/v1/tenants/dev/api-keys/{parsed[0]}", headers=bearer(admin))
        assert revoked.status_code == 200, revoked.text
        assert (await client.get(WORKFLOWS, headers=bearer(key))).status_code == 401


async def test_with_no_cache_time_every_request_looks_the_key_up(settings: Settings, pool: asyncpg.Pool) -> None:
    key = await api_key(settings.database_url, role="viewer")
    app = create_app(msgspec.structs.replace(settings, api_key_cache_seconds=0))
    async with AsyncTestClient(app, base_url="http://testserver.local") as client:
        assert (await client.get(WORKFLOWS, headers=bearer(key))).status_code == 200
        await _revoke_elsewhere(pool, key)
        assert (await client.get(WORKFLOWS, headers=bearer(key))).status_code == 401
