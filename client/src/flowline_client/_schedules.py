"""The client's schedule routes, mixed into ``AsyncFlowlineClient`` (kept apart so that its module stays small)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from flowline_client._transport import Transport
from flowline_client.models import BackfillPreview, BulkOperation, Page, Schedule, TriggeredRun


class ScheduleRoutes(Transport):
    """``/schedules``: cron and interval runs of a workflow."""

    async def list_schedules(
        self,
        *,
        workflow: str | None = None,
        paused: bool | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        """One page of schedules, by name; only ``workflow``'s, or only paused (or active) ones."""
        params = {"workflow": workflow, "paused": paused, "limit": limit, "offset": offset, "cursor": cursor}
        return await self._call("GET", "/schedules", Page[Schedule], params=params)

    def iter_schedules(self, *, workflow: str | None = None, paused: bool | None = None) -> AsyncIterator[Schedule]:
        """Every schedule (of ``workflow``, paused or not, when given)."""
        return self._pages(
            lambda cursor: ScheduleRoutes.list_schedules(
                self, workflow=workflow, paused=paused, limit=100, cursor=cursor
            )
        )

    async def get_schedule(self, schedule_id: str) -> Schedule:
        """One schedule, with its next five fire times and its last run."""
        return await self._call("GET", f"/schedules/{schedule_id}", Schedule)

    async def create_schedule(self, schedule: Mapping[str, Any]) -> Schedule:
        """A new schedule from the api's fields (``name``, ``workflowRef``, ``cron`` or ``interval``, …)."""
        return await self._call("POST", "/schedules", Schedule, body=dict(schedule))

    async def update_schedule(self, schedule_id: str, changes: Mapping[str, Any]) -> Schedule:
        """Change some fields of a schedule (a merge patch: null clears an optional field)."""
        return await self._call("PATCH", f"/schedules/{schedule_id}", Schedule, body=dict(changes))

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; the executions it started stay."""
        await self._send("DELETE", f"/schedules/{schedule_id}")

    async def pause_schedule(self, schedule_id: str) -> Schedule:
        """Stop starting runs until resumed."""
        return await self._call("POST", f"/schedules/{schedule_id}/pause", Schedule)

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        """Start runs again, from the next fire time after now."""
        return await self._call("POST", f"/schedules/{schedule_id}/resume", Schedule)

    async def trigger_schedule(self, schedule_id: str) -> TriggeredRun:
        """Start one run now."""
        return await self._call("POST", f"/schedules/{schedule_id}/trigger", TriggeredRun)

    async def backfill_schedule(self, schedule_id: str, start: datetime, end: datetime) -> BulkOperation:
        """Start one run per fire time in [start, end): a bulk operation to follow with ``get_bulk_operation``."""
        body = {"start": start.isoformat(), "end": end.isoformat()}
        return await self._call("POST", f"/schedules/{schedule_id}/backfill", BulkOperation, body=body)

    async def preview_backfill(self, schedule_id: str, start: datetime, end: datetime) -> BackfillPreview:
        """What ``backfill_schedule`` would start: the fire times in [start, end) and how many have no run yet."""
        body = {"start": start.isoformat(), "end": end.isoformat(), "dryRun": True}
        return await self._call("POST", f"/schedules/{schedule_id}/backfill", BackfillPreview, body=body)
