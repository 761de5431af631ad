"""The app-wide dependency providers: resources from the app state, and the tenant and caller of a request.

Each domain provides its own services, next to them (``provide_<x>_service`` in ``domain/<x>/service.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from flowline.db.audit import Actor
from flowline.db.tenants import read_tenant_id
from flowline.domain.credentials import Principal
from flowline.errors import NotFound
from flowline.kafka.outbox import OutboxPublisher
from flowline.runtime.request_ids import current_request_id
from flowline.settings import Settings
from litestar import Request
from litestar.datastructures import State
from litestar.params import FromPath


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
