"""The api in this process, with credentials, for the api integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import httpx
from flowline.runtime.ops import http_server
from flowline.settings import Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.ports import free_port
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


@contextlib.asynccontextmanager
async def served_api(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """The api for ``settings`` behind a real uvicorn server on 127.0.0.1: its root URL and an admin key of ``dev``.

    For requests that must run concurrently: the test client hands the app one request at a time.
    """
    key = await api_key(settings.database_url)
    port = free_port()
    server = http_server(create_app(settings), "127.0.0.1", port)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def served_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``served_api``, addressed relative to tenant ``dev``, with an admin key of it."""
    async with served_api(settings) as (url, key):
        base_url = f"{url}/api/v1/tenants/dev/"
        async with httpx.AsyncClient(base_url=base_url, headers=bearer(key)) as client:
            yield client
