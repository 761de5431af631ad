"""The ``http`` step: one request; the response is the output; failures are classified for retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from flowline.domain.actions import ActionContext, ActionFailed
from flowline.domain.agents import header_secrets, redact_values
from flowline.domain.definitions import SECRET_MASK, HttpRequest
from flowline.runtime.outbound import OutboundPolicy, OutboundRefused, guarded_client

# Statuses worth another attempt: the other side may recover, or asked us to come back later.
RETRYABLE_STATUSES = frozenset({408, 429})


# What an exchange keeps to unless settings say otherwise (Settings.outbound_response_max_bytes and
# outbound_deadline_seconds).
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
DEADLINE_SECONDS = 300.0


@dataclass(frozen=True)
class OutboundClient:
    """The pooled HTTP client of the http and agent steps, with the limits every exchange keeps.

    A response is read up to ``max_response_bytes`` (decoded), and a request with no timeout of its own ends
    after ``deadline_seconds`` however slowly the other side answers: a per-read timeout alone lets a server
    that drips bytes hold an attempt for ever.
    """

    http: httpx.AsyncClient
    max_response_bytes: int = MAX_RESPONSE_BYTES
    deadline_seconds: float = DEADLINE_SECONDS

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.http.aclose()


@dataclass(frozen=True)
class Answer:
    """A response, read whole within the limits."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    encoding: str

    @property
    def text(self) -> str:
        """The body as text, in the response's charset (UTF-8 by default)."""
        return self.content.decode(self.encoding, errors="replace")


def create_client(
    policy: OutboundPolicy, *, max_response_bytes: int = MAX_RESPONSE_BYTES, deadline_seconds: float = DEADLINE_SECONDS
) -> OutboundClient:
    """The one pooled client every http (and agent) step of a process shares.

    It connects only to addresses ``policy`` allows, checked on every connection, and follows no redirects.
    """
    http = guarded_client(
        policy,
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    return OutboundClient(http, max_response_bytes, deadline_seconds)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if 0.0 <= seconds < float("inf") else None
    try:
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _body(answer: Answer) -> Any:
    if "json" in answer.headers.get("content-type", ""):
        try:
            return json.loads(answer.content)
        except ValueError:
            pass
    return answer.text


def flowline_headers(context: ActionContext) -> dict[str, str]:
    """The idempotency and tracing headers every outgoing step request carries (docs/architecture.md §4.4)."""
    return {
        "Idempotency-Key": context.idempotency_key,
        "X-Flowline-Execution-Id": context.execution_id,
        "X-Flowline-Step-Id": context.step_id,
        "X-Flowline-Attempt": str(context.attempt),
    }


async def exchange(
    client: OutboundClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    content: str | bytes | None = None,
    json: Any = None,
    timeout_seconds: float | None = None,
    expected_status: Collection[int] = (),
) -> Answer:
    """Send one request, read its answer within the client's limits, and classify what went wrong.

    Shared by the http and agent steps. ``timeout_seconds`` bounds the whole exchange (else the client's
    deadline does), and each read too. Error messages hold the method, URL, status and the start of the
    response body, never request headers (they may carry credentials).

    Returns:
        The answer, when its status is expected (any 2xx when ``expected_status`` is empty).

    Raises:
        ActionFailed: an unexpected status (4xx other than 408/429 are final; 5xx, 408 and 429 are retryable
            and carry Retry-After), a timeout or a connection error (retryable), an answer over the size limit
            (``ResponseTooLarge``, final), or an unusable URL or an address the outbound policy refuses (final).
    """
    body: dict[str, Any] = {"content": content} if content is not None else {"json": json} if json is not None else {}
    deadline = timeout_seconds or client.deadline_seconds
    try:
        async with asyncio.timeout(deadline):
            answer = await _exchange(client, method, url, headers, timeout_seconds, body)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
        raise ActionFailed(f"{method} {url}: {err}", retryable=False) from err
    except OutboundRefused as err:
        raise ActionFailed(f"{method} {url}: {err.detail}", retryable=False) from err
    except TimeoutError as err:
        raise ActionFailed(f"{method} {url} timed out: no whole answer within {deadline:g} s", retryable=True) from err
    except httpx.TimeoutException as err:
        raise ActionFailed(f"{method} {url} timed out: {type(err).__name__}", retryable=True) from err
    except httpx.HTTPError as err:
        raise ActionFailed(f"{method} {url} failed: {type(err).__name__}: {err}", retryable=True) from err
    status = answer.status_code
    expected = status in expected_status if expected_status else 200 <= status < 300
    if not expected:
        raise ActionFailed(
            f"{method} {url} answered {status}: {answer.text[:500]}",
            retryable=status >= 500 or status in RETRYABLE_STATUSES,
            retry_after=retry_after_seconds(answer.headers.get("retry-after")),
        )
    return answer


async def _exchange(
    client: OutboundClient,
    method: str,
    url: str,
    headers: Mapping[str, str],
    timeout_seconds: float | None,
    body: dict[str, Any],
) -> Answer:
    request = client.http.build_request(
        method, url, headers=dict(headers), timeout=timeout_seconds or httpx.USE_CLIENT_DEFAULT, **body
    )
    response = await client.http.send(request, stream=True)
    try:
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():  # decoded: a small compressed body may unpack to a huge one
            size += len(chunk)
            if size > client.max_response_bytes:
                raise ActionFailed(
                    f"ResponseTooLarge: {method} {url} answered more than {client.max_response_bytes} bytes",
                    retryable=False,
                )
            chunks.append(chunk)
    finally:
        await response.aclose()
    return Answer(response.status_code, response.headers, b"".join(chunks), response.encoding or "utf-8")


async def send(
    client: OutboundClient,
    request: HttpRequest,
    context: ActionContext,
    *,
    secret_headers: Mapping[str, str] | None = None,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """Send the (rendered) request with Flowline's idempotency and tracing headers.

    ``request`` holds its secret headers masked (as rendered and stored); ``secret_headers`` are their opened
    values, sent in their place and replaced by ``***`` in any error message and anywhere in the output (an
    answer may echo them; the credentials after an auth scheme are masked on their own too).
    ``timeout_seconds`` (the step's) replaces the client's default for this request.

    Returns:
        ``{"status", "headers", "body"}``; a JSON body is decoded.

    Raises:
        ActionFailed: as ``exchange`` classifies the outcome.
    """
    secrets = dict(secret_headers or {})
    plain = {name: value for name, value in request.headers.items() if isinstance(value, str)}
    body = request.body
    try:
        response = await exchange(
            client,
            request.method.upper(),
            request.url,
            headers={**plain, **secrets, **flowline_headers(context)},
            content=body if isinstance(body, str | bytes) else None,
            json=None if isinstance(body, str | bytes) else body,
            timeout_seconds=timeout_seconds,
            expected_status=request.expected_status,
        )
    except ActionFailed as err:
        message = redact_values(str(err), header_secrets(secrets.values()), SECRET_MASK)
        raise ActionFailed(message, retryable=err.retryable, retry_after=err.retry_after) from None
    output = {"status": response.status_code, "headers": dict(response.headers), "body": _body(response)}
    # An answer may echo the request's headers (a debugging endpoint, an error page): it is stored, evented and
    # shown, so no secret header value stays in it, anywhere inside a string.
    redacted: dict[str, Any] = redact_values(output, header_secrets(secrets.values()), SECRET_MASK)
    return redacted
