"""Request bodies of the agent routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from flowline_schemas.agents import AuthType, Description, RetryConfig

from flowline_api.domain.merge_patch import MergePatch

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


class AgentUpdate(MergePatch, kw_only=True, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Changes to an agent (PUT and PATCH): omitted fields keep their value, null clears an optional one.

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
