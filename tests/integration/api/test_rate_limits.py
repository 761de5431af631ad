"""Rate limits: budgets for reads, writes and execution starts per principal (per client address without
credentials), RateLimit-* headers on every tenant response, 429 problem+json with Retry-After, with the
PostgreSQL store one budget across api instances, and default budgets that one principal never reaches.

The small budgets are per hour so that no window ends during a test: nothing here depends on a clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from flowline.settings import ConfigurationError, Settings
from flowline_api.app import create_app
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import BASE_URL, admin_client
from tests.support import api_key, bearer, define_and_start

Client = AsyncTestClient  # type: ignore[type-arg]
HELLO = {"steps": [{"id": "greet", "type": "action", "action": "core.echo", "input": {}}]}
NOOP = {"steps": [{"id": "nothing", "type": "action", "action": "core.noop", "input": {}}]}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


@pytest.fixture
def limited(settings: Settings) -> Settings:
    """Tiny budgets: 3 reads, 3 writes and 2 starts an hour."""
    return msgspec.structs.replace(
        settings, rate_limit_reads="3/hour", rate_limit_writes="3/hour", rate_limit_starts="2/hour"
    )


@pytest.fixture
async def api(limited: Settings) -> AsyncIterator[Client]:
    async with admin_client(limited) as client:
        yield client


def remaining(response: Any) -> int:
    """The budget left after ``response``, checking that every rate-limit header is there."""
    assert all(name in response.headers for name in RATE_LIMIT_HEADERS), dict(response.headers)
    assert 0 < int(response.headers["RateLimit-Reset"]) <= 3600
    return int(response.headers["RateLimit-Remaining"])


def assert_rate_limited(response: Any, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 429
    assert problem["title"] == "Too many requests"
    assert problem["detail"].startswith(f"the budget of {limit} requests per 3600 seconds is spent")
    assert remaining(response) == 0
    assert response.headers["Retry-After"] == response.headers["RateLimit-Reset"]


async def test_every_read_spends_the_read_budget_and_the_one_past_it_is_429(api: Client) -> None:
    responses = [await api.get("workflows"), await api.get("agents"), await api.get("workflows/demo.none")]

    assert [response.status_code for response in responses] == [200, 200, 404]
    assert [remaining(response) for response in responses] == [2, 1, 0]
    assert {response.headers["RateLimit-Limit"] for response in responses} == {"3"}
    assert {response.headers["RateLimit-Policy"] for response in responses} == {"3; w=3600"}
    assert "Retry-After" not in responses[-1].headers
    assert_rate_limited(await api.get("workflows"), limit=3)


async def test_writes_and_starts_have_budgets_of_their_own(api: Client, limited: Settings, pool: asyncpg.Pool) -> None:
    await define_and_start(pool, limited, "demo.hello", HELLO, {})
    for _ in range(3):
        await api.get("executions")
    assert_rate_limited(await api.get("executions"), limit=3)

    executed = await api.post("workflows/demo.hello/execute", json={"input": {}})
    started = await api.post("executions", json={"workflow": "demo.hello", "input": {}})
    written = await api.post("packs", json={"ref": "other"})

    assert (executed.status_code, executed.headers["RateLimit-Limit"], remaining(executed)) == (202, "2", 1)
    assert (started.status_code, started.headers["RateLimit-Limit"], remaining(started)) == (202, "2", 0)
    assert (written.status_code, written.headers["RateLimit-Limit"], remaining(written)) == (201, "3", 2)
    assert_rate_limited(await api.post("executions", json={"workflow": "demo.hello", "input": {}}), limit=2)
    rerun = await api.post(f"executions/{started.json()['executionId']}/rerun", json={"fromStep": "greet"})
    assert_rate_limited(rerun, limit=2)
    assert (await api.delete("packs/other")).status_code == 204  # writes are still allowed


async def test_each_principal_has_its_own_budgets(api: Client, limited: Settings) -> None:
    other = bearer(await api_key(limited.database_url, role="viewer"))
    for _ in range(3):
        await api.get("workflows")
    assert_rate_limited(await api.get("workflows"), limit=3)

    response = await api.get("workflows", headers=other)

    assert response.status_code == 200
    assert remaining(response) == 2


async def test_unauthenticated_requests_are_limited_per_client_address(api: Client) -> None:
    anonymous = {"Authorization": ""}
    bad_key = bearer("fl_0190f5d27c1e7a3b9c1d2f4e5a6b7c8d_wrong")

    responses = [
        await api.get("workflows", headers=anonymous),
        await api.get("workflows", headers=bad_key),
        await api.post("packs", headers=anonymous, json={"ref": "x"}),  # the writes budget of the address
        await api.get("agents", headers=anonymous),
    ]

    assert [response.status_code for response in responses] == [401, 401, 401, 401]
    assert all(response.headers["WWW-Authenticate"] == 'Bearer realm="flowline"' for response in responses)
    assert [remaining(response) for response in responses] == [2, 1, 2, 0]
    assert_rate_limited(await api.get("workflows", headers=bad_key), limit=3)
    authenticated = await api.get("workflows")
    assert authenticated.status_code == 200
    assert remaining(authenticated) == 2


async def test_health_and_metrics_are_never_limited(api: Client) -> None:
    for _ in range(3):
        await api.get("workflows")
    assert_rate_limited(await api.get("workflows"), limit=3)

    for path in ("/health", "/health/ready", "/metrics", "/docs/openapi.json") * 2:
        response = await api.get(f"http://testserver.local{path}")
        assert response.status_code == 200, path
        assert "RateLimit-Limit" not in response.headers, path


async def test_api_instances_count_apart_in_memory_and_together_in_postgresql(limited: Settings) -> None:
    key = bearer(await api_key(limited.database_url))

    async def reads_left(settings: Settings) -> list[int]:
        """What each of two instances over ``settings`` answers to the same key's reads, taking turns."""
        async with (
            AsyncTestClient(create_app(settings), base_url=BASE_URL) as first,
            AsyncTestClient(create_app(settings), base_url=BASE_URL) as second,
        ):
            responses = [await client.get("workflows", headers=key) for client in (first, second, first, second)]
        return [remaining(response) if response.status_code == 200 else response.status_code for response in responses]

    assert await reads_left(limited) == [2, 2, 1, 1]
    shared = msgspec.structs.replace(limited, rate_limit_store="postgres")
    assert await reads_left(shared) == [2, 1, 0, 429]


def test_a_bad_rate_setting_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="FLOWLINE_RATE_LIMIT_WRITES='fast'"):
        create_app(msgspec.structs.replace(settings, rate_limit_writes="fast"))


async def test_with_the_default_budgets_one_key_starts_a_burst_of_1500_executions_without_a_429(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await define_and_start(pool, settings, "demo.noop", NOOP, {})
    in_flight = asyncio.Semaphore(50)

    async with admin_client(settings) as api:

        async def start() -> int:
            async with in_flight:
                return (await api.post("workflows/demo.noop/execute", json={"input": {}})).status_code

        statuses = await asyncio.gather(*(start() for _ in range(1500)))

    assert Counter(statuses) == {202: 1500}
    assert await pool.fetchval("SELECT count(*) FROM executions") == 1 + 1500
