"""The ``agent`` step: POST the step input to a registered agent with its auth; its JSON answer is the output."""

from __future__ import annotations

from typing import Any

import msgspec
from flowline.domain.actions import ActionContext, ActionFailed
from flowline.domain.agents import OUTPUT_SECRET_FIELDS, Agent, agent_secrets, auth_headers, redact, redact_values
from flowline.domain.definitions import RetryPolicy

from flowline_executor.http_step import OutboundClient, exchange, flowline_headers


async def call_agent(client: OutboundClient, agent: Agent, step_input: Any, context: ActionContext) -> Any:
    """Call ``agent`` once with ``step_input`` as its JSON body.

    The request carries the agent's auth (an HMAC signature covers the exact body bytes sent), the attempt's
    ``Idempotency-Key``, ``X-Flowline-Execution-Id``, ``X-Flowline-Step-Id`` and ``X-Flowline-Attempt``, and
    is bounded by the agent's timeout.

    Returns:
        The decoded JSON body of the agent's 2xx answer (None for an empty body), with the agent's credentials
        masked wherever it quotes them.

    Raises:
        ActionFailed: as ``http_step.exchange`` classifies the outcome (4xx other than 408/429 final; 5xx,
            408, 429, timeouts and connection errors retryable), or a 2xx answer that is not JSON (final).
    """
    try:
        body = msgspec.json.encode(step_input)
    except (TypeError, msgspec.EncodeError) as err:
        raise ActionFailed(f"agent {agent.name!r}: the step input is not JSON: {err}", retryable=False) from err
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        **auth_headers(agent, body),
        **flowline_headers(context),
    }
    try:
        response = await exchange(
            client, "POST", agent.url, headers=headers, content=body, timeout_seconds=agent.timeout_ms / 1000
        )
    except ActionFailed as err:
        # The message may quote a header value (a protocol error) or an answer that echoes the credentials.
        raise ActionFailed(redact(str(err), agent), retryable=err.retryable, retry_after=err.retry_after) from None
    if not response.content:
        return None
    try:
        output = msgspec.json.decode(response.content)
    except msgspec.DecodeError as err:
        raise ActionFailed(
            f"agent {agent.name!r} answered {response.status_code} with a body that is not JSON: "
            f"{redact(response.text[:200], agent)!r}",
            retryable=False,
        ) from err
    # An answer that echoes the credentials (a header dump) is stored and shown: none stays in it.
    return redact_values(output, agent_secrets(agent, OUTPUT_SECRET_FIELDS))


def retry_policy(agent: Agent) -> RetryPolicy:
    """The retry policy of an agent step that sets no ``retry``: the agent's retryConfig, in seconds.

    An agent without a retryConfig gives the default policy (one attempt).
    """
    config = agent.retry_config
    if config is None:
        return RetryPolicy()
    return RetryPolicy(
        max_attempts=config.max_attempts,
        backoff=config.backoff,
        initial_interval=config.initial_interval_ms / 1000,
        max_interval=config.max_interval_ms / 1000,
    )
