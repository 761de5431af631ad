"""The client address is the connection's, unless the request came through a proxy in FLOWLINE_TRUSTED_PROXIES."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from flowline.runtime.ops import http_server
from flowline.settings import ConfigurationError, Settings
from flowline_api.app import create_app
from litestar import Request, get

from tests.ports import free_port

FORWARDED = {"X-Forwarded-For": "203.0.113.7"}


@get("/test/client-address", sync_to_thread=False)
def client_address(request: Request) -> dict[str, str]:  # type: ignore[type-arg]
    """What every part of the api (rate limits, logs) sees as the client."""
    assert request.client is not None
    return {"host": request.client.host}


@asynccontextmanager
async def served_api(settings: Settings, trusted_proxies: str) -> AsyncIterator[str]:
    """The real api app behind a real uvicorn server on 127.0.0.1, with a route that echoes the client address."""
    app = create_app(settings)
    app.register(client_address)
    port = free_port()
    server = http_server(app, "127.0.0.1", port, trusted_proxies=trusted_proxies)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/test/client-address"
    finally:
        server.should_exit = True
        await serving


async def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(settings: Settings) -> None:
    async with served_api(settings, "") as url, httpx.AsyncClient() as client:
        assert (await client.get(url, headers=FORWARDED)).json()["host"] == "127.0.0.1"


async def test_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(settings: Settings) -> None:
    async with served_api(settings, "10.0.0.0/8") as url, httpx.AsyncClient() as client:
        assert (await client.get(url, headers=FORWARDED)).json()["host"] == "127.0.0.1"


async def test_forwarded_for_is_honoured_from_a_trusted_proxy(settings: Settings) -> None:
    async with served_api(settings, "10.0.0.0/8, 127.0.0.1") as url, httpx.AsyncClient() as client:
        assert (await client.get(url, headers=FORWARDED)).json()["host"] == "203.0.113.7"
        assert (await client.get(url)).json()["host"] == "127.0.0.1"


def test_a_bad_trusted_proxy_setting_is_refused_at_start() -> None:
    with pytest.raises(ConfigurationError, match=r"FLOWLINE_TRUSTED_PROXIES: 'proxy\.internal'"):
        http_server(object(), "127.0.0.1", 0, trusted_proxies="proxy.internal")
