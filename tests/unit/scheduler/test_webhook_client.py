"""The webhook deliveries' HTTP client connects only where the outbound policy allows, by IP literal or by name."""

from __future__ import annotations

import socket

import pytest
from flowline.runtime.outbound import LOOPBACK_NETWORKS, OutboundPolicy, OutboundRefused
from flowline_scheduler.webhook_client import GuardedResolver, WebhookClient


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "0x7f000001"])
async def test_a_refused_address_is_never_connected_to(host: str) -> None:
    # 0x7f000001 is 127.0.0.1 in hexadecimal: not an IP literal to aiohttp, so it reaches the resolver.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        client = WebhookClient(OutboundPolicy(), max_connections=1, timeout=2.0)
        try:
            outcome = await client.post(f"http://{host}:{port}/hook", b"{}", {"content-type": "application/json"})
        finally:
            await client.aclose()
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected
    assert outcome.kind == "refused" and outcome.error is not None and "a loopback address" in outcome.error


async def test_a_name_is_refused_when_it_resolves_to_a_refused_address() -> None:
    with pytest.raises(OutboundRefused, match=r"^refused: localhost resolves to .*, a loopback address"):
        await GuardedResolver(OutboundPolicy()).resolve("localhost", 80)


async def test_an_allowed_name_resolves_to_the_checked_addresses() -> None:
    resolved = await GuardedResolver(OutboundPolicy.from_setting(LOOPBACK_NETWORKS)).resolve("localhost", 8080)

    assert {entry["host"] for entry in resolved} <= {"127.0.0.1", "::1"}
    assert all(entry["hostname"] == "localhost" and entry["port"] == 8080 for entry in resolved)
