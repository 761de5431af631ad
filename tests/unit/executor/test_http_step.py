"""The http step's request: secret headers sent opened, and never quoted in an error message."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest
from flowline.domain.actions import ActionContext, ActionFailed
from flowline.domain.definitions import HttpRequest
from flowline_executor.http_step import OutboundClient, send

SECRET = "Bearer sk-0a1b2c3d-never-shown"


class NoLogger:
    def log(self, level: str, message: str, **metadata: Any) -> None:
        pass


CONTEXT = ActionContext(execution_id="e", step_id="call", attempt=1, idempotency_key="e:call:0", logger=NoLogger())
# As rendered and stored: the secret masked.
REQUEST = msgspec.convert(
    {"method": "POST", "url": "https://hooks.example/x", "headers": {"Authorization": {"secret": "***"}, "X": "y"}},
    HttpRequest,
)


def echoing(status: int, sent: list[httpx.Request] | None = None) -> OutboundClient:
    """A client whose server answers ``status`` with the request's headers in its body, as some services do."""

    def answer(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        return httpx.Response(status, json=dict(request.headers))

    return OutboundClient(httpx.AsyncClient(transport=httpx.MockTransport(answer)))


async def test_secret_headers_are_sent_opened_in_place_of_the_mask_and_masked_in_the_output() -> None:
    sent: list[httpx.Request] = []
    client = echoing(200, sent)
    try:
        output = await send(client, REQUEST, CONTEXT, secret_headers={"Authorization": SECRET})
    finally:
        await client.aclose()

    assert sent[0].headers["authorization"] == SECRET
    # The answer echoes it; the output (stored, evented, shown) does not.
    assert output["body"]["authorization"] == "***"
    assert output["body"]["x"] == "y"
    assert SECRET not in msgspec.json.encode(output).decode()


async def test_a_secret_is_masked_inside_longer_text_keys_and_nested_values_of_the_output() -> None:
    token = SECRET.removeprefix("Bearer ")

    def answer(request: httpx.Request) -> httpx.Response:
        header = request.headers["authorization"]
        return httpx.Response(
            200,
            json={
                "echo": f"you sent Authorization: {header}.",
                "token": token,  # the credentials alone, without their scheme
                "deep": [[{"seen": [f"x{header}x"]}]],
                header: "as a key",
            },
            headers={"x-echo": header},
        )

    client = OutboundClient(httpx.AsyncClient(transport=httpx.MockTransport(answer)))
    try:
        output = await send(client, REQUEST, CONTEXT, secret_headers={"Authorization": SECRET})
    finally:
        await client.aclose()

    assert output["body"] == {
        "echo": "you sent Authorization: ***.",
        "token": "***",
        "deep": [[{"seen": ["x***x"]}]],
        "***": "as a key",
    }
    assert output["headers"]["x-echo"] == "***"
    assert token not in msgspec.json.encode(output).decode()


async def test_an_error_message_never_quotes_a_secret_header() -> None:
    client = echoing(400)
    try:
        with pytest.raises(ActionFailed) as failed:
            await send(client, REQUEST, CONTEXT, secret_headers={"Authorization": SECRET})
    finally:
        await client.aclose()

    assert "answered 400" in str(failed.value)
    assert SECRET not in str(failed.value)
    assert '"authorization":"***"' in str(failed.value)
    assert failed.value.retryable is False
