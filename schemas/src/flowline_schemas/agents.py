"""Response bodies of the agent routes, and the auth types and retry policy their request bodies share."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec

AuthType = Literal["none", "bearer", "basic", "api_key", "hmac"]
AUTH_TYPES: tuple[str, ...] = get_args(AuthType)
# Also the bound of a new or changed agent's description (the api's request bodies use it).
Description = Annotated[str, msgspec.Meta(max_length=2000, examples=["Summarizes incident timelines"])]


class RetryConfig(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """An agent's default retry policy for agent steps that set no ``retry`` (intervals in milliseconds)."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100, description="attempts in all, the first included")] = 3
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial_interval_ms: Annotated[
        int, msgspec.Meta(ge=1, le=3_600_000, description="wait after the first failed attempt")
    ] = 1000
    max_interval_ms: Annotated[int, msgspec.Meta(ge=1, le=86_400_000, description="longest wait between attempts")] = (
        60_000
    )

    def __post_init__(self) -> None:
        if self.max_interval_ms < self.initial_interval_ms:
            raise ValueError("maxIntervalMs must be at least initialIntervalMs")


class Agent(msgspec.Struct, kw_only=True, rename="camel"):
    """A registered agent; its credentials show only as the names of the fields that are set."""

    id: Annotated[str, msgspec.Meta(examples=["0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"])]
    name: Annotated[str, msgspec.Meta(examples=["summarizer"])]
    description: Description | None
    url: Annotated[str, msgspec.Meta(examples=["https://agents.example.com/summarize"])]
    health_path: Annotated[str | None, msgspec.Meta(examples=["/health"])]
    auth_type: Annotated[str, msgspec.Meta(examples=["bearer"])]
    auth_config_fields: Annotated[
        list[str], msgspec.Meta(description="names of the stored authConfig fields", examples=[["token"]])
    ]
    timeout_ms: Annotated[int, msgspec.Meta(examples=[30000])]
    # The request bodies' struct, so it forbids unknown fields: a field a newer server adds to it breaks older clients.
    retry_config: RetryConfig | None
    status: Annotated[str, msgspec.Meta(examples=["active"])]
    created_at: datetime
    updated_at: datetime


class AgentHealth(msgspec.Struct, kw_only=True, rename="camel"):
    """The outcome of one health request to an agent."""

    status: Annotated[
        Literal["healthy", "unhealthy", "unreachable"],
        msgspec.Meta(description="healthy: a 2xx answer; unhealthy: any other status; unreachable: no answer"),
    ]
    latency_ms: Annotated[float, msgspec.Meta(description="time until the answer or the failure", examples=[12.5])]
    http_status: Annotated[int | None, msgspec.Meta(description="the agent's status code, if it answered")]
    checked_at: datetime
    error: Annotated[str | None, msgspec.Meta(description="why it is not healthy", examples=[None])]
