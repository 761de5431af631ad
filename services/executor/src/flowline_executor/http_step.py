"""The ``http`` step: one request; the response is the output; failures are classified for retries."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from flowline.actions import ActionContext, ActionFailed
from flowline.definitions import SECRET_MASK, HttpRequest
from flowline.outbound import OutboundPolicy, OutboundRefused, guarded_client

# Statuses worth another attempt: the other side may recover, or asked us to come back later.
RETRYABLE_STATUSES = frozenset({408, 429})


def create_client(policy: OutboundPolicy) -> httpx.AsyncClient:
    """The one pooled client every http (and agent) step of a process shares.

    It connects only to addresses ``policy`` allows, checked on every connection, and follows no redirects.
    """
    return guarded_client(
        policy,
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


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


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


def flowline_headers(context: ActionContext) -> dict[str, str]:
    """The idempotency and tracing headers every outgoing step request carries (DESIGN §3.4)."""
    return {
        "Idempotency-Key": context.idempotency_key,
        "X-Flowline-Execution-Id": context.execution_id,
        "X-Flowline-Step-Id": context.step_id,
        "X-Flowline-Attempt": str(context.attempt),
    }


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    content: str | bytes | None = None,
    json: Any = None,
    timeout_seconds: float | None = None,
    expected_status: Collection[int] = (),
) -> httpx.Response:
    """Send one request and classify what went wrong; shared by the http and agent steps.

    Error messages hold the method, URL, status and the start of the response body, never request headers
    (they may carry credentials).

    Returns:
        The response, when its status is expected (any 2xx when ``expected_status`` is empty).

    Raises:
        ActionFailed: an unexpected status (4xx other than 408/429 are final; 5xx, 408 and 429 are retryable
            and carry Retry-After), a timeout or a connection error (retryable), or an unusable URL or an
            address the outbound policy refuses (final).
    """
    body: dict[str, Any] = {"content": content} if content is not None else {"json": json} if json is not None else {}
    try:
        response = await client.request(
            method, url, headers=dict(headers), timeout=timeout_seconds or httpx.USE_CLIENT_DEFAULT, **body
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
        raise ActionFailed(f"{method} {url}: {err}", retryable=False) from err
    except OutboundRefused as err:
        raise ActionFailed(f"{method} {url}: {err.detail}", retryable=False) from err
    except httpx.TimeoutException as err:
        raise ActionFailed(f"{method} {url} timed out: {type(err).__name__}", retryable=True) from err
    except httpx.HTTPError as err:
        raise ActionFailed(f"{method} {url} failed: {type(err).__name__}: {err}", retryable=True) from err
    status = response.status_code
    expected = status in expected_status if expected_status else 200 <= status < 300
    if not expected:
        raise ActionFailed(
            f"{method} {url} answered {status}: {response.text[:500]}",
            retryable=status >= 500 or status in RETRYABLE_STATUSES,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    return response


async def send(
    client: httpx.AsyncClient,
    request: HttpRequest,
    context: ActionContext,
    *,
    secret_headers: Mapping[str, str] | None = None,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """Send the (rendered) request with Flowline's idempotency and tracing headers.

    ``request`` holds its secret headers masked (as rendered and stored); ``secret_headers`` are their opened
    values, sent in their place and replaced by ``***`` in any error message (an answer may echo them).
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
        message = str(err)
        for value in sorted(secrets.values(), key=len, reverse=True):
            message = message.replace(value, SECRET_MASK)
        raise ActionFailed(message, retryable=err.retryable, retry_after=err.retry_after) from None
    return {"status": response.status_code, "headers": dict(response.headers), "body": _body(response)}
