"""The client's routes of the data lifecycle: deleting executions, one or many."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import httpx

from flowline_client._requests import ParamValue, filter_body, without_none
from flowline_client.models import BulkOperation, ExecutionFilter

Response = TypeVar("Response")


class _Transport(Protocol):
    """What these routes use of ``AsyncFlowlineClient``."""

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response: ...

    async def _call(
        self,
        method: str,
        path: str,
        answer: type[Response],
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response: ...


class LifecycleRoutes:
    """Deleting executions, mixed into ``AsyncFlowlineClient``."""

    async def delete_execution(self: _Transport, execution_id: str) -> None:
        """Delete a finished root execution with everything under it (its children, steps, events, logs)."""
        await self._send("DELETE", f"/executions/{execution_id}")

    async def bulk_delete(
        self: _Transport,
        *,
        ids: Sequence[str] | None = None,
        filter: ExecutionFilter | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> BulkOperation:
        """Delete the finished root executions given by ``ids`` or selected by ``filter``; the rest are skipped."""
        body = {"ids": ids, "filter": filter_body(filter), "reason": reason, "dryRun": dry_run}
        return await self._call("POST", "/executions/bulk/delete", BulkOperation, body=without_none(body))
