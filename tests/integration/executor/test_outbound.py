"""The outbound policy where connections are made: every resolved address checked, no redirects followed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import pytest
from flowline.runtime.outbound import LOOPBACK_NETWORKS, OutboundPolicy, OutboundRefused, guarded_client
from flowline.runtime.service import Runtime
from flowline.settings import Settings

from tests.support import CountingServer, define_and_start, run_until_finished

LIMITS = httpx.Limits(max_connections=5)
REFUSED_LOOPBACK = "refused: 127.0.0.1 is a loopback address; allow it with FLOWLINE_OUTBOUND_ALLOWED_NETWORKS"


@pytest.fixture
def target() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


async def test_a_refused_address_is_never_connected_to(target: CountingServer) -> None:
    async with guarded_client(OutboundPolicy(), limits=LIMITS) as client:
        with pytest.raises(OutboundRefused) as refused:
            await client.get(f"{target.url}/ok")

    assert refused.value.detail == REFUSED_LOOPBACK
    assert target.requests == []


async def test_a_name_is_checked_by_what_it_resolves_to_when_connecting(target: CountingServer) -> None:
    url = f"{target.url}/ok".replace("127.0.0.1", "localhost")
    async with guarded_client(OutboundPolicy(), limits=LIMITS) as client:
        with pytest.raises(OutboundRefused, match=r"^refused: localhost resolves to (127\.0\.0\.1|::1), a loopback"):
            await client.get(url)

    assert target.requests == []


async def test_allowed_networks_are_reached(target: CountingServer) -> None:
    async with guarded_client(OutboundPolicy.from_setting(LOOPBACK_NETWORKS), limits=LIMITS) as client:
        response = await client.get(f"{target.url}/ok".replace("127.0.0.1", "localhost"))

    assert response.status_code == 200
    assert len(target.requests) == 1


async def test_redirects_are_answers_not_followed(target: CountingServer) -> None:
    async with guarded_client(OutboundPolicy.from_setting(LOOPBACK_NETWORKS), limits=LIMITS) as client:
        response = await client.get(f"{target.url}/status/302")

    assert response.status_code == 302
    assert [path for _, path, _, _ in target.requests] == ["/status/302"]


async def test_an_http_step_to_a_refused_address_fails_at_once_without_retries(
    runtime: Runtime, settings: Settings, target: CountingServer
) -> None:
    strict = msgspec.structs.replace(settings, outbound_allowed_networks="")
    definition = {
        "steps": [
            {
                "id": "call",
                "type": "http",
                "request": {"method": "POST", "url": f"{target.url}/ok", "body": {"n": 1}},
                "retry": {"maxAttempts": 3, "initialInterval": 0.1},
            }
        ]
    }
    started = await define_and_start(runtime.pool, strict, "demo.inward", definition, {})
    await runtime.outbox.publish(started.outbox)

    assert await run_until_finished(runtime, strict, started.id) == "failed"

    step = await runtime.pool.fetchrow(
        "SELECT status, attempts, error FROM step_executions WHERE execution_id = $1", started.id
    )
    assert (step["status"], step["attempts"]) == ("failed", 1)
    assert step["error"]["message"] == f"POST {target.url}/ok: {REFUSED_LOOPBACK}"
    assert step["error"]["retryable"] is False
    assert target.requests == []
