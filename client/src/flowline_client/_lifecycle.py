"""The client's routes of the data lifecycle: deleting executions, one or many."""

from __future__ import annotations

from collections.abc import Sequence

from flowline_client._requests import filter_body, without_none
from flowline_client._transport import Transport
from flowline_client.models import BulkOperation, ExecutionFilter


class LifecycleRoutes(Transport):
    """Deleting executions, mixed into ``AsyncFlowlineClient``."""

    async def delete_execution(self, execution_id: str) -> None:
        """Delete a finished root execution with everything under it (its children, steps, events, logs)."""
        await self._send("DELETE", f"/executions/{execution_id}")

    async def bulk_delete(
        self,
        *,
        ids: Sequence[str] | None = None,
        filter: ExecutionFilter | None = None,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> BulkOperation:
        """Delete the finished root executions given by ``ids`` or selected by ``filter``; the rest are skipped."""
        body = {"ids": ids, "filter": filter_body(filter), "reason": reason, "dryRun": dry_run}
        return await self._call("POST", "/executions/bulk/delete", BulkOperation, body=without_none(body))
