from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.support import api_key, bearer


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """The api in this process over the test's real database and broker, addressed relative to tenant ``dev``,
    with an admin key of that tenant."""
    headers = bearer(await api_key(settings.database_url))
    # The key is the fixture's setup, not a change the tests look for in the audit log.
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute("DELETE FROM audit_logs WHERE entity_type = 'api_key'")
    finally:
        await connection.close()
    base_url = "http://testserver.local/api/v1/tenants/dev/"
    async with AsyncTestClient(create_app(settings), base_url=base_url) as client:
        client.headers.update(headers)
        yield client
