"""Dependency providers: resources from the app state, services built per request."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import MultiFernet
from flowline.credentials import Principal
from flowline.db.audit import Actor
from flowline.db.tenants import read_tenant_id
from flowline.errors import NotFound
from flowline.executions import ExecutionInserts, WorkflowCache
from flowline.kafka.outbox import OutboxPublisher
from flowline.outbound import OutboundPolicy
from flowline.request_ids import current_request_id
from flowline.settings import Settings
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from flowline_api.domain.agents.service import AgentService
from flowline_api.domain.audit.service import AuditService
from flowline_api.domain.control.service import ControlService
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.packs.service import PackService
from flowline_api.domain.workflows.service import WorkflowService


def provide_pool(state: State) -> asyncpg.Pool:
    """The asyncpg pool opened by the lifespan."""
    pool: asyncpg.Pool = state.pool
    return pool


def provide_outbox(state: State) -> OutboxPublisher:
    """The outbox publisher opened by the lifespan."""
    outbox: OutboxPublisher = state.outbox
    return outbox


def provide_settings(state: State) -> Settings:
    """The settings the app was created with."""
    settings: Settings = state.settings
    return settings


async def provide_tenant_id(tenant: FromPath[str], state: State, request: Request[Principal, Any, Any]) -> uuid.UUID:
    """The id of the tenant in the path, which must be the caller's own (cached: tenants are never renamed).

    Raises:
        NotFound: no such tenant, or another tenant's: both answer alike, so ids of others reveal nothing.
    """
    if request.user.tenant != tenant:
        raise NotFound(f"tenant {tenant!r} does not exist")
    cache: dict[str, uuid.UUID] = state.tenant_ids
    tenant_id = cache.get(tenant)
    if tenant_id is None:
        tenant_id = cache[tenant] = await read_tenant_id(state.pool, tenant)
    return tenant_id


def provide_caller(request: Request[Principal, Any, Any]) -> Principal:
    """The caller, as the authentication middleware found it."""
    return request.user


def provide_actor(request: Request[Principal, Any, Any]) -> Actor:
    """Who makes this request, for the audit log, with the request id the middleware made current."""
    return Actor(principal=request.user.subject, request_id=current_request_id.get())


def provide_workflow_service(
    pool: NamedDependency[asyncpg.Pool], settings: NamedDependency[Settings], state: State
) -> WorkflowService:
    """A workflow service for this request (it seals secret header values with the app's cipher)."""
    return WorkflowService(pool, settings, state.known_actions, state.auth_cipher)


def provide_pack_service(
    pool: NamedDependency[asyncpg.Pool], workflow_service: NamedDependency[WorkflowService]
) -> PackService:
    """A pack service for this request (installing a pack saves workflows through the workflow service)."""
    return PackService(pool, workflow_service)


def provide_execution_service(
    pool: NamedDependency[asyncpg.Pool],
    outbox: NamedDependency[OutboxPublisher],
    settings: NamedDependency[Settings],
    state: State,
) -> ExecutionService:
    """An execution service for this request, sharing the app's cache of started workflows and its inserts."""
    workflows: WorkflowCache = state.started_workflows
    inserts: ExecutionInserts = state.execution_inserts
    return ExecutionService(pool, outbox, settings.topics, workflows, inserts)


def provide_agent_service(pool: NamedDependency[asyncpg.Pool], state: State) -> AgentService:
    """An agent service for this request, sharing the app's cipher, HTTP client and outbound policy."""
    cipher: MultiFernet = state.auth_cipher
    http: httpx.AsyncClient = state.http
    outbound: OutboundPolicy = state.outbound
    return AgentService(pool, cipher, http, outbound)


def provide_audit_service(pool: NamedDependency[asyncpg.Pool]) -> AuditService:
    """An audit log reader for this request."""
    return AuditService(pool)


def provide_control_service(
    pool: NamedDependency[asyncpg.Pool], outbox: NamedDependency[OutboxPublisher], settings: NamedDependency[Settings]
) -> ControlService:
    """An execution command service for this request."""
    return ControlService(pool, outbox, settings.topics)
