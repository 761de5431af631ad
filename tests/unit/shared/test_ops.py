"""The ops HTTP server of a background service runs inside the service, which keeps its signals."""

from __future__ import annotations

import asyncio
import signal

from flowline.runtime.ops import create_ops_app, http_server
from prometheus_client import CollectorRegistry

from tests.support import eventually


async def test_an_embedded_server_leaves_the_signal_handlers_to_its_service() -> None:
    # EmbeddedServer overrides uvicorn's undocumented capture_signals: if an upgrade of uvicorn installs its
    # handlers some other way, SIGTERM would stop the http server and not the service.
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    server = http_server(create_ops_app("test", {}, CollectorRegistry()), "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    try:
        await eventually(started)
        assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    finally:
        server.should_exit = True
        await serving
