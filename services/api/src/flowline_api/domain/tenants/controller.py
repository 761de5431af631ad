"""Routes of the tenant's default execution retention: everyone reads it, admins set it."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
from flowline.db.audit import Actor
from flowline.db.tenants import read_tenant_retention, update_tenant_retention
from flowline.settings import Settings, retention_seconds, retention_setting, retention_text
from flowline_schemas.tenants import TenantRetention
from litestar import Controller, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody

from flowline_api.auth import ADMIN, VIEWER
from flowline_api.domain.openapi import NO_TENANT, problems
from flowline_api.domain.workflows.schemas import Retention

PATH = "/api/v1/tenants/dev/retention"


class TenantRetentionUpdate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The tenant's new default retention; ``null`` goes back to the server's."""

    retention: Retention | None


class TenantRetentionController(Controller):
    """``/api/v1/tenants/{tenant}/retention``: how long executions of workflows without their own are kept."""

    path = "/retention"
    tags = ["tenants"]

    @get("/", opt=VIEWER, summary="Read the tenant's default retention", responses=problems(PATH, not_found=NO_TENANT))
    async def read(
        self, tenant_id: NamedDependency[uuid.UUID], pool: NamedDependency[asyncpg.Pool], state: State
    ) -> TenantRetention:
        """The tenant's default execution retention, and what applies to its workflows that set none."""
        return _body(await read_tenant_retention(pool, tenant_id), state.settings)

    @put(
        "/",
        opt=ADMIN,
        summary="Set the tenant's default retention",
        responses=problems(
            PATH, not_found=NO_TENANT, invalid=("Expected `str | null`, got `int` - at `$.retention`", "/retention")
        ),
    )
    async def update(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        data: JSONBody[TenantRetentionUpdate],
        pool: NamedDependency[asyncpg.Pool],
        actor: NamedDependency[Actor],
        state: State,
    ) -> TenantRetention:
        """Set how long the executions of the tenant's workflows without a retention of their own are kept.

        Audited (entity type ``tenant``); the retention loop applies it from its next pass.
        """
        seconds = None if data.retention is None else retention_seconds(data.retention)
        async with pool.acquire() as connection, connection.transaction():
            await update_tenant_retention(connection, tenant_id=tenant_id, retention_seconds=seconds, actor=actor)
        return _body(seconds, state.settings)


def _body(seconds: int | None, settings: Settings) -> TenantRetention:
    """The response body of a tenant's default retention (None: the server's)."""
    server = retention_setting(settings, "execution_retention")
    return TenantRetention(
        retention=None if seconds is None else retention_text(seconds),
        effective=retention_text(server if seconds is None else seconds),
    )
