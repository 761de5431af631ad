"""Request and response bodies of the agent routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from flowline.agents import AuthType, RetryConfig

AgentStatus = Literal["active", "inactive"]
AgentName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$",
        description="unique among the tenant's agents; agent steps name it",
        examples=["summarizer"],
    ),
]
AgentUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2000,
        description="http or https URL the agent step POSTs its input to",
        examples=["https://agents.example.com/summarize"],
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=2000, examples=["Summarizes incident timelines"])]
HealthPath = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^/(?!/)[^\s]{0,500}$",
        description="path the health check GETs, resolved against `url` (default: `url` itself)",
        examples=["/health"],
    ),
]
TimeoutMs = Annotated[
    int, msgspec.Meta(ge=100, le=300_000, description="time limit of one call, in milliseconds", examples=[30000])
]
AuthConfig = Annotated[
    dict[str, Any],
    msgspec.Meta(
        description=(
            "write-only credentials, encrypted at rest and never returned. Fields per authType: "
            "`bearer` {token}; `basic` {username, password}; `api_key` {key, header (default X-API-Key)}; "
            "`hmac` {secret, header (default X-Flowline-Signature), algorithm (sha256)}: the header carries "
            "`sha256=<hex HMAC of the exact body bytes>`; `none` takes no fields"
        ),
        examples=[{"token": "s3cr3t-token"}],
    ),
]

AGENT_CREATE_EXAMPLE = {
    "name": "summarizer",
    "description": "Summarizes incident timelines",
    "url": "https://agents.example.com/summarize",
    "healthPath": "/health",
    "authType": "bearer",
    "authConfig": {"token": "s3cr3t-token"},
    "timeoutMs": 30000,
    "retryConfig": {"maxAttempts": 3, "backoff": "exponential", "initialIntervalMs": 1000, "maxIntervalMs": 60000},
    "status": "active",
}


class AgentCreate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A new agent."""

    name: AgentName
    url: AgentUrl
    description: Description | None = None
    health_path: HealthPath | None = None
    auth_type: AuthType = "none"
    auth_config: AuthConfig | None = None
    timeout_ms: TimeoutMs = 30_000
    retry_config: RetryConfig | None = None
    status: AgentStatus = "active"


class AgentUpdate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Changes to an agent: omitted fields keep their value, null clears an optional one.

    ``authConfig`` omitted keeps the stored credentials while ``authType`` stays the same; a new ``authType``
    (other than ``none``) needs a new ``authConfig``.
    """

    name: AgentName | msgspec.UnsetType = msgspec.UNSET
    url: AgentUrl | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    health_path: HealthPath | msgspec.UnsetType | None = msgspec.UNSET
    auth_type: AuthType | msgspec.UnsetType = msgspec.UNSET
    auth_config: AuthConfig | msgspec.UnsetType | None = msgspec.UNSET
    timeout_ms: TimeoutMs | msgspec.UnsetType = msgspec.UNSET
    retry_config: RetryConfig | msgspec.UnsetType | None = msgspec.UNSET
    status: AgentStatus | msgspec.UnsetType = msgspec.UNSET


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
