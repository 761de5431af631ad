"""The access log: one JSON line per api request (429s and unknown paths too), probes only at DEBUG, and
FLOWLINE_ACCESS_LOG=false for none."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
from flowline.domain.credentials import key_subject, parse_key
from flowline.runtime.ops import JsonLogFormatter
from flowline.settings import Settings
from flowline_api.middleware import ACCESS_LOGGER
from litestar.testing import AsyncTestClient

from tests.integration.api.clients import admin_client

Client = AsyncTestClient  # type: ignore[type-arg]
ROOT = "http://testserver.local"
EXECUTION_ROUTE = "/api/v1/tenants/{tenant}/executions/{execution_id}"


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """What the access logger writes, in the api's JSON format, from DEBUG up."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonLogFormatter("api"))
    level = ACCESS_LOGGER.level
    ACCESS_LOGGER.addHandler(handler)
    ACCESS_LOGGER.setLevel(logging.DEBUG)
    try:
        yield written
    finally:
        ACCESS_LOGGER.removeHandler(handler)
        ACCESS_LOGGER.setLevel(level)


def lines(written: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in written.getvalue().splitlines()]


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Client]:
    """The api with a budget of two reads an hour, so that the third read is a 429."""
    async with admin_client(msgspec.structs.replace(settings, rate_limit_reads="2/hour")) as client:
        yield client


async def test_each_request_leaves_one_line_with_its_route_status_request_id_principal_and_client(
    api: Client, access_lines: io.StringIO
) -> None:
    execution_id = uuid.uuid4()
    key = parse_key(api.headers["Authorization"].removeprefix("Bearer "))
    assert key is not None

    response = await api.get(f"executions/{execution_id}", headers={"X-Request-ID": "req-access-1"})

    assert response.status_code == 404
    [line] = lines(access_lines)
    path = f"/api/v1/tenants/dev/executions/{execution_id}"
    assert line["message"] == f"GET {path} 404 {line['durationMs']:.1f} ms"
    assert (line["level"], line["service"], line["logger"]) == ("INFO", "api", "flowline_api.access")
    assert {key: line[key] for key in ("method", "route", "path", "status", "requestId")} == {
        "method": "GET",
        "route": EXECUTION_ROUTE,
        "path": path,
        "status": 404,
        "requestId": "req-access-1",
    }
    assert isinstance(line["durationMs"], float)
    assert (line["principal"], line["clientAddress"]) == (key_subject(key[0]), "testclient")


async def test_rate_limited_unauthenticated_and_unknown_requests_are_logged_with_their_status(
    api: Client, access_lines: io.StringIO
) -> None:
    responses = [
        await api.get("workflows"),
        await api.get("agents"),
        await api.get("workflows"),  # past the budget of two reads
        await api.get("workflows", headers={"Authorization": ""}),
        await api.get(f"{ROOT}/no/such/path"),
    ]

    assert [response.status_code for response in responses] == [200, 200, 429, 401, 404]
    logged = lines(access_lines)
    assert [(line["status"], line["route"]) for line in logged] == [
        (200, "/api/v1/tenants/{tenant}/workflows"),
        (200, "/api/v1/tenants/{tenant}/agents"),
        (429, "/api/v1/tenants/{tenant}/workflows"),
        (401, "/api/v1/tenants/{tenant}/workflows"),
        (404, None),
    ]
    # Every answer names its request id, the same as its line.
    assert [line["requestId"] for line in logged] == [response.headers["X-Request-ID"] for response in responses]
    assert [line["principal"] is None for line in logged] == [False, False, False, True, True]


async def test_health_and_metrics_requests_are_logged_only_at_debug(api: Client, access_lines: io.StringIO) -> None:
    for path in ("/health", "/health/ready", "/metrics"):
        assert (await api.get(f"{ROOT}{path}")).status_code == 200
    assert (await api.get(f"{ROOT}/docs/openapi.json")).status_code == 200

    assert [(line["level"], line["path"]) for line in lines(access_lines)] == [
        ("DEBUG", "/health"),
        ("DEBUG", "/health/ready"),
        ("DEBUG", "/metrics"),
        ("INFO", "/docs/openapi.json"),
    ]


async def test_the_access_log_can_be_turned_off(settings: Settings, access_lines: io.StringIO) -> None:
    async with admin_client(msgspec.structs.replace(settings, access_log=False)) as api:
        response = await api.get("workflows")

    assert response.status_code == 200
    assert response.headers["X-Request-ID"]
    assert lines(access_lines) == []
