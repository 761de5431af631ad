"""Routes of registered agents."""

from __future__ import annotations

import uuid
from typing import Annotated

from flowline.db.audit import Actor
from flowline_schemas.agents import Agent, AgentHealth
from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import Body, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.domain.agents.examples import (
    AGENT_CREATE_EXAMPLE,
    AGENT_HMAC_CREATE_EXAMPLE,
    AGENT_ID,
    BAD_PAGE,
    BAD_URL,
    DEACTIVATION_EXAMPLE,
    NOT_FOUND,
    PATH,
    TOKEN_ROTATION_EXAMPLE,
    TOO_DEEP,
)
from flowline_api.domain.agents.schemas import AgentCreate, AgentStatus, AgentUpdate
from flowline_api.domain.agents.service import AgentService, provide_agent_service
from flowline_api.domain.openapi import NO_TENANT, problems
from flowline_api.pagination import AgentPage, Cursor, Limit, Offset
from flowline_api.path_ids import MALFORMED_ID_IS_NOT_FOUND, AgentId

CreateBody = Annotated[
    AgentCreate,
    Body(
        description="The agent to register; `authConfig` is write-only",
        examples=[
            Example(summary="bearer token", value=AGENT_CREATE_EXAMPLE),
            Example(
                summary="HMAC-signed bodies",
                value=AGENT_HMAC_CREATE_EXAMPLE,
            ),
        ],
    ),
]
UpdateBody = Annotated[
    AgentUpdate,
    Body(
        description="Fields to change; omitted fields keep their value",
        examples=[
            Example(summary="rotate the token", value=TOKEN_ROTATION_EXAMPLE),
            Example(summary="take out of service", value=DEACTIVATION_EXAMPLE),
        ],
    ),
]

UPDATE_PROBLEMS = problems(
    f"{PATH}/{AGENT_ID}",
    bad_request=TOO_DEEP,
    not_found=NOT_FOUND,
    conflict="agent 'summarizer' already exists",
    invalid=BAD_URL,
)


class AgentController(Controller):
    """``/api/v1/tenants/{tenant}/agents``: HTTP services that agent steps call."""

    path = "/agents"
    opt = {MALFORMED_ID_IS_NOT_FOUND: True}
    tags = ["agents"]
    dependencies = {"agent_service": Provide(provide_agent_service, sync_to_thread=False)}

    @post(
        "/",
        opt=OPERATOR,
        status_code=HTTP_201_CREATED,
        summary="Register an agent",
        responses=problems(
            PATH,
            bad_request=TOO_DEEP,
            not_found=NO_TENANT,
            conflict="agent 'summarizer' already exists",
            invalid=BAD_URL,
        ),
    )
    async def create_agent(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        agent_service: NamedDependency[AgentService],
        actor: NamedDependency[Actor],
        data: CreateBody,
    ) -> Agent:
        """Register an HTTP agent that `agent` steps call by name.

        `authConfig` is validated for `authType`, stored encrypted, and never returned: responses list only
        the names of its fields (`authConfigFields`). 409 when a live agent has the name; 422 for a URL that is
        not http(s) or an auth config that does not fit its type.
        """
        return await agent_service.create(tenant_id, data, actor)

    @get("/", opt=VIEWER, summary="List agents", responses=problems(PATH, bad_request=BAD_PAGE, not_found=NO_TENANT))
    async def list_agents(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        agent_service: NamedDependency[AgentService],
        status: Annotated[AgentStatus | None, QueryParameter(description="only agents in this status")] = None,
        search: Annotated[
            str | None,
            QueryParameter(max_length=200, description="case-insensitive text in the name or description"),
        ] = None,
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> AgentPage:
        """Live agents ordered by name, one page at a time (`nextCursor` for stable deep pages)."""
        return await agent_service.list(
            tenant_id, status=status, search=search, limit=limit, offset=offset, cursor=cursor
        )

    @get(
        "/{agent_id:str}",
        opt=VIEWER,
        summary="Read an agent",
        responses=problems(f"{PATH}/{AGENT_ID}", not_found=NOT_FOUND),
    )
    async def get_agent(
        self, tenant_id: NamedDependency[uuid.UUID], agent_service: NamedDependency[AgentService], agent_id: AgentId
    ) -> Agent:
        """One agent; 404 when it does not exist, was deleted or belongs to another tenant."""
        return await agent_service.read(tenant_id, agent_id)

    @put(
        "/{agent_id:str}",
        opt=OPERATOR,
        summary="Change an agent",
        responses=UPDATE_PROBLEMS,
    )
    async def update_agent(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        agent_service: NamedDependency[AgentService],
        actor: NamedDependency[Actor],
        agent_id: AgentId,
        data: UpdateBody,
    ) -> Agent:
        """Change an agent's fields: omitted fields keep their value, null clears an optional one (as PATCH).

        Without `authConfig` the stored credentials stay while `authType` stays; changing `authType` (other
        than to `none`) needs a new `authConfig`.
        """
        return await agent_service.update(tenant_id, agent_id, data, actor)

    @patch(
        "/{agent_id:str}",
        opt=OPERATOR,
        summary="Change some fields of an agent",
        responses=UPDATE_PROBLEMS,
    )
    async def patch_agent(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        agent_service: NamedDependency[AgentService],
        actor: NamedDependency[Actor],
        agent_id: AgentId,
        data: UpdateBody,
    ) -> Agent:
        """A JSON merge patch (RFC 7396) of the agent's fields, as `application/merge-patch+json` or JSON.

        The same change as PUT: omitted fields keep their value, null clears an optional one, and without
        `authConfig` the stored credentials stay while `authType` stays.
        """
        return await agent_service.update(tenant_id, agent_id, data, actor)

    @delete(
        "/{agent_id:str}",
        opt=OPERATOR,
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete an agent",
        responses=problems(f"{PATH}/{AGENT_ID}", not_found=NOT_FOUND),
    )
    async def delete_agent(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        agent_service: NamedDependency[AgentService],
        actor: NamedDependency[Actor],
        agent_id: AgentId,
    ) -> None:
        """Soft-delete an agent: it disappears from lists and reads, and its name can be registered again."""
        await agent_service.delete(tenant_id, agent_id, actor)

    @get(
        "/{agent_id:str}/health",
        opt=OPERATOR,  # a read, but it sends the agent's credentials: not for viewers
        summary="Check an agent's health",
        responses=problems(f"{PATH}/{AGENT_ID}/health", not_found=NOT_FOUND),
    )
    async def check_agent_health(
        self, tenant_id: NamedDependency[uuid.UUID], agent_service: NamedDependency[AgentService], agent_id: AgentId
    ) -> AgentHealth:
        """GET the agent's URL (or `healthPath` resolved against it) with its auth, now.

        The request is bounded by the agent's timeout or 5 seconds, whichever is shorter: `healthy` for a 2xx
        answer, `unhealthy` for any other status, `unreachable` when no answer came. It needs the operator
        role, although it changes nothing: it sends the agent's credentials.
        """
        return await agent_service.check_health(tenant_id, agent_id)
