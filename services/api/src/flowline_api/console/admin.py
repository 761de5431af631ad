"""The console's agents page (with a health check for operators) and the audit log (for admins)."""

from __future__ import annotations

import uuid
from typing import Any

from flowline.domain.credentials import Principal
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.response import Template

from flowline_api.auth import ADMIN, OPERATOR, VIEWER
from flowline_api.console.views import page_context, pretty
from flowline_api.domain.agents.service import AgentService
from flowline_api.domain.audit.service import AuditFilter, AuditService
from flowline_api.path_ids import AgentId


class ConsoleAdminController(Controller):
    """``/ui/agents`` and ``/ui/audit``."""

    path = "/"

    @get("/agents", opt=VIEWER, name="console:agents")
    async def agents_page(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        agent_service: NamedDependency[AgentService],
    ) -> Template:
        """The registered agents and their status."""
        page = await agent_service.list(tenant_id, status=None, search=None, limit=200, offset=0, cursor=None)
        return Template("agents.html", context=page_context(caller, page=page, health=None, checked=None))

    @post("/agents/{agent_id:str}/health", opt=OPERATOR, name="console:agent-health")
    async def check_agent(
        self,
        agent_id: AgentId,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        agent_service: NamedDependency[AgentService],
    ) -> Template:
        """Call the agent's health endpoint now (with its credentials) and show the answer beside it."""
        health = await agent_service.check_health(tenant_id, agent_id)
        page = await agent_service.list(tenant_id, status=None, search=None, limit=200, offset=0, cursor=None)
        context = page_context(caller, page=page, health=health, checked=str(agent_id))
        return Template("agents.html", context=context)

    @get("/audit", opt=ADMIN, name="console:audit")
    async def audit_page(
        self,
        request: Request[Principal, Any, State],
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        audit_service: NamedDependency[AuditService],
    ) -> Template:
        """The tenant's audit log, newest first, by entity type and principal."""
        query = request.query_params
        where = AuditFilter(entity_type=query.get("entityType") or None, principal=query.get("principal") or None)
        page = await audit_service.list(tenant_id, where, limit=100, offset=0, cursor=query.get("cursor") or None)
        return Template("audit.html", context=page_context(caller, page=page, query=query, pretty=pretty))
