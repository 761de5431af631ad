"""The api in this process, with credentials, for the api integration tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.support import api_key, bearer

BASE_URL = "http://testserver.local/api/v1/tenants/dev/"


@contextlib.asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The api for ``settings`` in this process, addressed relative to tenant ``dev``, with an admin key of it."""
    headers = bearer(await api_key(settings.database_url))
    # The key is the test's setup, not a change the tests look for in the audit log.
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("DELETE FROM audit_logs WHERE entity_type = 'api_key'")
    finally:
        await connection.close()
    async with AsyncTestClient(create_app(settings), base_url=BASE_URL) as client:
        client.headers.update(headers)
        yield client
