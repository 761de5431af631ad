"""Routes of the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from flowline_api.auth import ADMIN
from flowline_api.domain.audit.service import AuditFilter, AuditService, provide_audit_service
from flowline_api.domain.openapi import NO_TENANT, problems
from flowline_api.pagination import AuditLogPage, Cursor, Limit, Offset


class AuditLogController(Controller):
    """``/api/v1/tenants/{tenant}/audit-logs``: who changed which workflow, pack, agent or bulk operation, and how."""

    path = "/audit-logs"
    tags = ["audit"]
    dependencies = {"audit_service": Provide(provide_audit_service, sync_to_thread=False)}

    @get(
        "/",
        opt=ADMIN,
        summary="List audit log entries",
        responses=problems(
            "/api/v1/tenants/dev/audit-logs", bad_request="from: must not be later than to", not_found=NO_TENANT
        ),
    )
    async def list_audit_logs(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        audit_service: NamedDependency[AuditService],
        entity_type: Annotated[
            str | None,
            QueryParameter(name="entityType", max_length=100, description="workflow, pack, agent or bulk_operation"),
        ] = None,
        entity_id: Annotated[
            str | None, QueryParameter(name="entityId", max_length=300, description="the changed entity's id")
        ] = None,
        principal: Annotated[str | None, QueryParameter(max_length=300, description="who made the change")] = None,
        since: Annotated[
            datetime | None,
            QueryParameter(name="from", description="entries at or after this time (ISO 8601; UTC if no zone)"),
        ] = None,
        until: Annotated[
            datetime | None,
            QueryParameter(name="to", description="entries before this time (ISO 8601; UTC if no zone)"),
        ] = None,
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> AuditLogPage:
        """Audit entries of the tenant, newest first.

        One entry per create, update or delete of a workflow, pack, agent or bulk operation, with field-level
        changes (secrets masked) and the request id.
        """
        where = AuditFilter(entity_type=entity_type, entity_id=entity_id, principal=principal, since=since, until=until)
        return await audit_service.list(tenant_id, where, limit=limit, offset=offset, cursor=cursor)
