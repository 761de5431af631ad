"""The operators' and admins' routes of the client: agents, bulk operations, the audit log, API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from flowline_client._requests import ParamValue, filter_body, without_none
from flowline_client._transport import Transport
from flowline_client.models import (
    Agent,
    AgentHealth,
    ApiKey,
    ApiKeyList,
    AuditLog,
    BulkOperation,
    CreatedApiKey,
    ExecutionFilter,
    Page,
)


class OperationRoutes(Transport):
    """Agents, bulk operations, the audit log and API keys."""

    # ----- agents

    async def list_agents(
        self,
        *,
        status: str | None = None,
        search: str | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[Agent]:
        """One page of agents."""
        params = {"status": status, "search": search, "limit": limit, "offset": offset, "cursor": cursor}
        return await self._call("GET", "/agents", Page[Agent], params=params)

    def iter_agents(self, *, status: str | None = None, search: str | None = None) -> AsyncIterator[Agent]:
        """Every agent matching the filters."""
        return self._pages(lambda cursor: self.list_agents(status=status, search=search, limit=100, cursor=cursor))

    async def get_agent(self, agent_id: str) -> Agent:
        """One agent."""
        return await self._call("GET", f"/agents/{agent_id}", Agent)

    async def create_agent(self, agent: Mapping[str, Any]) -> Agent:
        """Register an agent (``name``, ``url`` and optional camelCase fields such as ``authType``)."""
        return await self._call("POST", "/agents", Agent, body=dict(agent))

    async def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> Agent:
        """Change the fields given (a JSON merge patch); omitting ``authConfig`` keeps the stored credentials."""
        return await self._call("PATCH", f"/agents/{agent_id}", Agent, body=dict(changes))

    async def delete_agent(self, agent_id: str) -> None:
        """Soft-delete an agent, freeing its name."""
        await self._send("DELETE", f"/agents/{agent_id}")

    async def check_agent_health(self, agent_id: str) -> AgentHealth:
        """Call the agent's health path now."""
        return await self._call("GET", f"/agents/{agent_id}/health", AgentHealth)

    # ----- bulk operations and audit

    async def bulk_cancel(
        self,
        *,
        ids: Sequence[str] | None = None,
        filter: ExecutionFilter | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> BulkOperation:
        """Cancel the executions given by ``ids`` or selected by ``filter`` (the filters of ``list_executions``)."""
        body = {"ids": ids, "filter": filter_body(filter), "reason": reason, "dryRun": dry_run}
        return await self._call("POST", "/executions/bulk/cancel", BulkOperation, body=without_none(body))

    async def bulk_retry(
        self,
        *,
        ids: Sequence[str] | None = None,
        filter: ExecutionFilter | None = None,
        note: str | None = None,
        dry_run: bool = False,
    ) -> BulkOperation:
        """Retry the failed executions given by ``ids`` or selected by ``filter``."""
        body = {"ids": ids, "filter": filter_body(filter), "note": note, "dryRun": dry_run}
        return await self._call("POST", "/executions/bulk/retry", BulkOperation, body=without_none(body))

    async def get_bulk_operation(self, operation_id: str) -> BulkOperation:
        """A bulk operation and its progress."""
        return await self._call("GET", f"/bulk-operations/{operation_id}", BulkOperation)

    async def list_audit_logs(
        self,
        *,
        entity_type: str | None = None,
        entity_id: str | None = None,
        principal: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[AuditLog]:
        """One page of audit entries, newest first."""
        params: dict[str, ParamValue] = {
            "entityType": entity_type,
            "entityId": entity_id,
            "principal": principal,
            "from": since,
            "to": until,
            "limit": limit,
            "offset": offset,
            "cursor": cursor,
        }
        return await self._call("GET", "/audit-logs", Page[AuditLog], params=params)

    def iter_audit_logs(
        self,
        *,
        entity_type: str | None = None,
        entity_id: str | None = None,
        principal: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AsyncIterator[AuditLog]:
        """Every audit entry matching the filters, newest first."""
        return self._pages(
            lambda cursor: self.list_audit_logs(
                entity_type=entity_type,
                entity_id=entity_id,
                principal=principal,
                since=since,
                until=until,
                limit=100,
                cursor=cursor,
            )
        )

    # ----- API keys (admins)

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key of the tenant, newest first, revoked ones included; never their secrets."""
        return (await self._call("GET", "/api-keys", ApiKeyList)).items

    async def create_api_key(self, name: str, role: str) -> CreatedApiKey:
        """A new key with ``role`` (viewer, operator or admin); its ``key`` is shown this once."""
        return await self._call("POST", "/api-keys", CreatedApiKey, body={"name": name, "role": role})

    async def revoke_api_key(self, key_id: str) -> ApiKey:
        """Revoke a key: requests with it are refused from now on."""
        return await self._call("DELETE", f"/api-keys/{key_id}", ApiKey)
