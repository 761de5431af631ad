"""``call_agent`` against a real local HTTP server: auth headers, idempotency headers, failure classes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from flowline.domain.actions import ActionContext, ActionFailed
from flowline.domain.agents import Agent
from flowline.domain.definitions import RetryPolicy
from flowline.runtime.outbound import LOOPBACK_NETWORKS, OutboundPolicy
from flowline_executor.agent_step import call_agent, retry_policy
from flowline_executor.http_step import OutboundClient, create_client
from flowline_schemas.agents import RetryConfig

from tests.ports import free_port
from tests.support import CountingServer


class NoLogger:
    def log(self, level: str, message: str, **metadata: Any) -> None:
        pass


CONTEXT = ActionContext(
    execution_id="0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d",
    step_id="summarize",
    attempt=2,
    idempotency_key="0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d:summarize:0",
    logger=NoLogger(),
)


@pytest.fixture
def target() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    client = create_client(OutboundPolicy.from_setting(LOOPBACK_NETWORKS))
    yield client
    await client.aclose()


def agent(url: str, auth_type: str = "none", timeout_ms: int = 5000, **auth_config: str) -> Agent:
    return Agent(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        name="summarizer",
        url=url,
        auth_type=auth_type,
        auth_config=auth_config,
        timeout_ms=timeout_ms,
    )


async def test_the_input_is_posted_as_json_and_the_json_answer_is_the_output(
    client: OutboundClient, target: CountingServer
) -> None:
    output = await call_agent(client, agent(f"{target.url}/ok"), {"text": "héllo", "n": [1, 2]}, CONTEXT)

    method, path, headers, body = target.requests[-1]
    assert (method, path) == ("POST", "/ok")
    assert json.loads(body) == {"text": "héllo", "n": [1, 2]}
    assert headers["content-type"] == "application/json"
    assert output == {"path": "/ok", "got": body.decode()}


async def test_idempotency_and_tracing_headers(client: OutboundClient, target: CountingServer) -> None:
    await call_agent(client, agent(f"{target.url}/ok"), None, CONTEXT)

    headers = target.requests[-1][2]
    assert headers["idempotency-key"] == CONTEXT.idempotency_key
    assert headers["x-flowline-execution-id"] == CONTEXT.execution_id
    assert headers["x-flowline-step-id"] == "summarize"
    assert headers["x-flowline-attempt"] == "2"
    assert "authorization" not in headers


async def test_bearer(client: OutboundClient, target: CountingServer) -> None:
    await call_agent(client, agent(f"{target.url}/ok", "bearer", token="t0k"), {}, CONTEXT)

    assert target.requests[-1][2]["authorization"] == "Bearer t0k"


@pytest.mark.parametrize(
    ("auth_type", "config"),
    [
        ("bearer", {"token": "tok-9e8d7c6b-never-stored"}),
        ("basic", {"username": "flow", "password": "pw-5a4b3c2d-never-stored"}),
        ("api_key", {"key": "key-1f2e3d4c-never-stored", "header": "Authorization"}),
    ],
)
async def test_an_answer_echoing_the_credentials_is_output_without_them(
    client: OutboundClient, target: CountingServer, auth_type: str, config: dict[str, str]
) -> None:
    output = await call_agent(client, agent(f"{target.url}/headers", auth_type, **config), {}, CONTEXT)

    sent = target.requests[-1][2]["authorization"]
    assert "***" in output["headers"]["authorization"]
    assert output["seen"].startswith("auth was ") and "***" in output["seen"]
    text = json.dumps(output)
    assert sent not in text
    assert not any(value in text for name, value in config.items() if name not in ("header", "username"))
    assert "x-flowline-step-id" in output["headers"]  # a user name alone is not masked: it is everywhere


async def test_basic(client: OutboundClient, target: CountingServer) -> None:
    await call_agent(client, agent(f"{target.url}/ok", "basic", username="flow", password="p@ss:word"), {}, CONTEXT)

    scheme, _, credentials = target.requests[-1][2]["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == "flow:p@ss:word"


@pytest.mark.parametrize(("config", "header"), [({}, "x-api-key"), ({"header": "X-Agent-Key"}, "x-agent-key")])
async def test_api_key(client: OutboundClient, target: CountingServer, config: dict[str, str], header: str) -> None:
    await call_agent(client, agent(f"{target.url}/ok", "api_key", key="k-123", **config), {}, CONTEXT)

    assert target.requests[-1][2][header] == "k-123"


@pytest.mark.parametrize(
    ("config", "header"), [({}, "x-flowline-signature"), ({"header": "X-Signature"}, "x-signature")]
)
async def test_hmac_signs_the_exact_body_bytes(
    client: OutboundClient, target: CountingServer, config: dict[str, str], header: str
) -> None:
    await call_agent(client, agent(f"{target.url}/ok", "hmac", secret="shh", **config), {"b": 1, "a": "é"}, CONTEXT)

    _, _, headers, body = target.requests[-1]
    expected = hmac.new(b"shh", body, hashlib.sha256).hexdigest()
    assert headers[header] == f"sha256={expected}"


async def test_an_empty_answer_is_null(client: OutboundClient, target: CountingServer) -> None:
    assert await call_agent(client, agent(f"{target.url}/empty"), {}, CONTEXT) is None


async def test_a_2xx_answer_that_is_not_json_fails_for_good(client: OutboundClient, target: CountingServer) -> None:
    with pytest.raises(ActionFailed) as failed:
        await call_agent(client, agent(f"{target.url}/text"), {}, CONTEXT)

    assert failed.value.retryable is False
    assert "not JSON" in str(failed.value)


@pytest.mark.parametrize(
    ("status", "retryable", "retry_after"),
    [(400, False, None), (401, False, None), (404, False, None), (408, True, None), (429, True, 7.0),
     (500, True, None), (503, True, 0.0)],
)  # fmt: skip
async def test_failure_classes(
    client: OutboundClient, target: CountingServer, status: int, retryable: bool, retry_after: float | None
) -> None:
    with pytest.raises(ActionFailed) as failed:
        await call_agent(client, agent(f"{target.url}/status/{status}", "bearer", token="s3cret"), {}, CONTEXT)

    assert failed.value.retryable is retryable
    assert failed.value.retry_after == retry_after
    assert f"answered {status}" in str(failed.value)
    assert "s3cret" not in str(failed.value)


async def test_a_timeout_is_retryable(client: OutboundClient, target: CountingServer) -> None:
    with pytest.raises(ActionFailed) as failed:
        await call_agent(client, agent(f"{target.url}/slow/1", timeout_ms=100), {}, CONTEXT)

    assert failed.value.retryable is True
    assert "timed out" in str(failed.value)


async def test_a_refused_connection_is_retryable(client: OutboundClient) -> None:
    with pytest.raises(ActionFailed) as failed:
        await call_agent(client, agent(f"http://127.0.0.1:{free_port()}/"), {}, CONTEXT)

    assert failed.value.retryable is True


async def test_input_that_is_not_json_fails_for_good(client: OutboundClient, target: CountingServer) -> None:
    with pytest.raises(ActionFailed) as failed:
        await call_agent(client, agent(f"{target.url}/ok"), {"when": object()}, CONTEXT)

    assert failed.value.retryable is False
    assert target.requests == []


def test_retry_policy_converts_milliseconds() -> None:
    configured = Agent(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        name="a",
        url="http://x",
        auth_type="none",
        retry_config=RetryConfig(max_attempts=5, backoff="fixed", initial_interval_ms=250, max_interval_ms=2000),
    )

    assert retry_policy(configured) == RetryPolicy(
        max_attempts=5, backoff="fixed", initial_interval=0.25, max_interval=2.0
    )
    assert retry_policy(agent("http://x")) == RetryPolicy()


async def test_an_answer_over_the_size_limit_fails_the_attempt_for_good(target: CountingServer) -> None:
    small = create_client(OutboundPolicy.from_setting(LOOPBACK_NETWORKS), max_response_bytes=1_000_000)
    try:
        with pytest.raises(ActionFailed, match="ResponseTooLarge") as failed:
            await call_agent(small, agent(f"{target.url}/huge/50000000"), {}, CONTEXT)
        assert not failed.value.retryable
        assert await call_agent(small, agent(f"{target.url}/ok"), {}, CONTEXT) == {"path": "/ok", "got": "{}"}
    finally:
        await small.aclose()


async def test_a_server_that_drips_its_answer_is_cut_off_by_the_deadline(target: CountingServer) -> None:
    # Each byte comes within the per-read timeout; the whole answer never would.
    with pytest.raises(ActionFailed, match="no whole answer within 2 s") as failed:
        await call_agent(
            create_client(OutboundPolicy.from_setting(LOOPBACK_NETWORKS)),
            agent(f"{target.url}/drip/600", timeout_ms=2000),
            {},
            CONTEXT,
        )
    assert failed.value.retryable
