"""The asynchronous client: packs, workflows and executions; the other routes come from its route groups."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import httpx

from flowline_client._lifecycle import LifecycleRoutes
from flowline_client._operations import OperationRoutes
from flowline_client._requests import ParamValue, execution_body
from flowline_client._schedules import ScheduleRoutes
from flowline_client._streams import stream_messages
from flowline_client._webhooks import WebhookRoutes
from flowline_client.errors import FlowlineApiError
from flowline_client.models import (
    AttemptList,
    Cancelled,
    ChildExecution,
    ChildList,
    EventList,
    Execution,
    ExecutionAccepted,
    ExecutionPage,
    ExecutionSummary,
    Pack,
    PackInstalled,
    Page,
    PromiseSettlement,
    RecoveryPreview,
    RerunAccepted,
    RetryAccepted,
    StatusChanged,
    StepExecution,
    StepList,
    StreamLog,
    StreamMessage,
    Task,
    TaskAttempt,
    TaskLogPage,
    Workflow,
    WorkflowSummary,
    WorkflowVersion,
)

LogFormat = Literal["text", "json"]

# What a workflow file leaves out is cleared when it is applied (the file is the workflow), except ``enabled``
# and ``public``: operators switch those, and applying the same file again must not undo that.
_APPLIED_DEFAULTS: dict[str, Any] = {
    "label": None,
    "description": None,
    "inputSchema": None,
    "outputSchema": None,
    "tags": [],
}


def _log_query(attempt: int | None, search: str | None, context: int) -> dict[str, Any]:
    """The attempt filter, text search and context of a log page's query (those not asked for left out)."""
    return {"attempt": attempt, "q": search, "context": context or None}


class AsyncFlowlineClient(OperationRoutes, LifecycleRoutes, ScheduleRoutes, WebhookRoutes):
    """A client of one tenant's routes of the Flowline api.

    Args:
        api_url: the api's root URL, e.g. ``http://127.0.0.1:8000``.
        tenant: the tenant slug.
        api_key: an API key ``fl_<id>_<secret>`` or a JWT, sent as a bearer token.
        timeout: seconds to wait for an answer (streams wait longer between events).
        transport: an httpx transport, e.g. to reach the api over a Unix socket.
    """

    # ----- packs

    async def list_packs(self, *, limit: int = 20, offset: int = 0, cursor: str | None = None) -> Page[Pack]:
        """One page of packs, by ref."""
        params = {"limit": limit, "offset": offset, "cursor": cursor}
        return await self._call("GET", "/packs", Page[Pack], params=params)

    def iter_packs(self) -> AsyncIterator[Pack]:
        """Every pack."""
        return self._pages(lambda cursor: self.list_packs(limit=100, cursor=cursor))

    async def get_pack(self, ref: str) -> Pack:
        """One pack."""
        return await self._call("GET", f"/packs/{ref}", Pack)

    async def create_pack(
        self, ref: str, *, label: str | None = None, description: str | None = None, version: str | None = None
    ) -> Pack:
        """A new, empty pack."""
        body = {"ref": ref, "label": label, "description": description, "version": version}
        return await self._call("POST", "/packs", Pack, body=body)

    async def install_pack(self, files: Mapping[str, str]) -> PackInstalled:
        """Create or update a pack and its workflows from its files (``pack.yaml``, ``workflows/*.yaml``).

        Args:
            files: file contents by path relative to the pack folder.

        Returns:
            What changed, per workflow; one bad file changes nothing (a 422 naming the file).
        """
        return await self._call("POST", "/packs/install", PackInstalled, body={"files": dict(files)})

    async def list_pack_workflows(
        self, pack: str, *, limit: int = 20, offset: int = 0, cursor: str | None = None
    ) -> Page[WorkflowSummary]:
        """One page of a pack's workflows (a 404 for an unknown pack, where ``list_workflows`` gives none)."""
        params = {"limit": limit, "offset": offset, "cursor": cursor}
        return await self._call("GET", f"/packs/{pack}/workflows", Page[WorkflowSummary], params=params)

    async def delete_pack(self, ref: str, *, cascade: bool = False) -> None:
        """Soft-delete a pack; ``cascade`` deletes its workflows too (otherwise a pack holding some is a 409)."""
        await self._send("DELETE", f"/packs/{ref}", params={"cascade": cascade or None})

    # ----- workflows

    async def list_workflows(
        self,
        *,
        pack: str | None = None,
        tags: Sequence[str] | None = None,
        enabled: bool | None = None,
        search: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
    ) -> Page[WorkflowSummary]:
        """One page of workflows (without definitions)."""
        params: dict[str, ParamValue] = {
            "pack": pack,
            "tags": tags,
            "enabled": enabled,
            "search": search,
            "sort": sort,
            "order": order,
            "limit": limit,
            "offset": offset,
            "cursor": cursor,
        }
        return await self._call("GET", "/workflows", Page[WorkflowSummary], params=params)

    def iter_workflows(
        self,
        *,
        pack: str | None = None,
        tags: Sequence[str] | None = None,
        search: str | None = None,
        enabled: bool | None = None,
    ) -> AsyncIterator[WorkflowSummary]:
        """Every workflow matching the filters."""
        return self._pages(
            lambda cursor: self.list_workflows(
                pack=pack, tags=tags, search=search, enabled=enabled, limit=100, cursor=cursor
            )
        )

    async def get_workflow(self, ref: str, *, version: int | None = None) -> Workflow:
        """A workflow with its latest version, or with ``version``."""
        path = f"/workflows/{ref}" if version is None else f"/workflows/{ref}/versions/{version}"
        return await self._call("GET", path, Workflow)

    async def list_workflow_versions(
        self, ref: str, *, limit: int = 20, offset: int = 0, cursor: str | None = None
    ) -> Page[WorkflowVersion]:
        """One page of a workflow's versions, newest first."""
        params = {"limit": limit, "offset": offset, "cursor": cursor}
        return await self._call("GET", f"/workflows/{ref}/versions", Page[WorkflowVersion], params=params)

    def iter_workflow_versions(self, ref: str) -> AsyncIterator[WorkflowVersion]:
        """Every version of a workflow, newest first."""
        return self._pages(lambda cursor: self.list_workflow_versions(ref, limit=100, cursor=cursor))

    async def create_workflow(self, workflow: Mapping[str, Any]) -> Workflow:
        """Define a new workflow (``ref`` and ``definition``, camelCase fields) as version 1."""
        return await self._call("POST", "/workflows", Workflow, body=dict(workflow))

    async def update_workflow(self, ref: str, changes: Mapping[str, Any]) -> Workflow:
        """Change the fields given (a JSON merge patch: others keep their value, None clears an optional one).

        A changed ``definition`` or schema makes a new version; ``{"enabled": False}`` disables the workflow.
        """
        return await self._call("PATCH", f"/workflows/{ref}", Workflow, body=dict(changes))

    async def apply_workflow(self, workflow: Mapping[str, Any]) -> Workflow:
        """Create the workflow ``workflow["ref"]``, or make an existing one what ``workflow`` says.

        Fields ``workflow`` leaves out are cleared, except ``enabled`` and ``public``, which keep their values.
        """
        ref = str(workflow["ref"])
        state = {name: value for name, value in workflow.items() if name != "ref"}
        try:
            return await self.update_workflow(ref, {**_APPLIED_DEFAULTS, **state})
        except FlowlineApiError as err:
            if err.status != 404:
                raise
        return await self.create_workflow(workflow)

    async def delete_workflow(self, ref: str) -> None:
        """Soft-delete a workflow: gone from lists and reads, its executions still name it."""
        await self._send("DELETE", f"/workflows/{ref}")

    async def execute_workflow(
        self,
        ref: str,
        input: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> ExecutionAccepted:
        """Start an execution of a workflow; it runs asynchronously."""
        body = execution_body(input, version, idempotency_key, metadata, tags)
        return await self._call("POST", f"/workflows/{ref}/execute", ExecutionAccepted, body=body)

    # ----- executions

    async def start_execution(
        self,
        workflow: str,
        input: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
        tags: Sequence[str] | None = None,
    ) -> ExecutionAccepted:
        """Start an execution of ``workflow`` through ``POST /executions`` (the same as ``execute_workflow``)."""
        body = execution_body(input, version, idempotency_key, metadata, tags)
        return await self._call("POST", "/executions", ExecutionAccepted, body={"workflow": workflow, **body})

    async def list_executions(
        self,
        *,
        workflow: str | None = None,
        status: Sequence[str] | None = None,
        triggered_by: str | None = None,
        started_by: str | None = None,
        parent_id: str | None = None,
        schedule_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        tag: Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        search: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        limit: int = 20,
        offset: int = 0,
        cursor: str | None = None,
    ) -> ExecutionPage:
        """One page of executions matching every filter given."""
        params: dict[str, ParamValue] = {
            "workflow": workflow,
            "status": status,
            "triggeredBy": triggered_by,
            "startedBy": started_by,
            "parentId": parent_id,
            "scheduleId": schedule_id,
            "createdAfter": created_after,
            "createdBefore": created_before,
            "tag": tag,
            "search": search,
            "sort": sort,
            "order": order,
            "limit": limit,
            "offset": offset,
            "cursor": cursor,
        }
        params.update({f"metadata.{key}": value for key, value in (metadata or {}).items()})
        return await self._call("GET", "/executions", ExecutionPage, params=params)

    def iter_executions(self, /, **filters: Any) -> AsyncIterator[ExecutionSummary]:
        """Every execution matching the filters of ``list_executions``."""
        return self._pages(lambda cursor: self.list_executions(**filters, limit=100, cursor=cursor))

    async def get_execution(self, execution_id: str, *, include_logs: bool = False) -> Execution:
        """An execution with its steps (and its latest 100 log records with ``include_logs``)."""
        params = {"include": "logs" if include_logs else None}
        return await self._call("GET", f"/executions/{execution_id}", Execution, params=params)

    async def get_steps(self, execution_id: str) -> list[StepExecution]:
        """An execution's steps in definition order."""
        return (await self._call("GET", f"/executions/{execution_id}/steps", StepList)).steps

    async def get_events(self, execution_id: str, *, since_sequence: int = 0, limit: int = 100) -> EventList:
        """An execution's events after ``since_sequence``."""
        params = {"sinceSequence": since_sequence, "limit": limit}
        return await self._call("GET", f"/executions/{execution_id}/events", EventList, params=params)

    async def get_children(self, execution_id: str) -> list[ChildExecution]:
        """The child executions, oldest first."""
        return (await self._call("GET", f"/executions/{execution_id}/children", ChildList)).children

    async def get_task_attempts(self, execution_id: str, task_id: str) -> list[TaskAttempt]:
        """Every attempt of one task of an execution."""
        path = f"/executions/{execution_id}/tasks/{task_id}/attempts"
        return (await self._call("GET", path, AttemptList)).attempts

    async def cancel_execution(self, execution_id: str, *, reason: str | None = None) -> Cancelled:
        """Cancel a pending, running or paused execution and its children."""
        return await self._call("POST", f"/executions/{execution_id}/cancel", Cancelled, body={"reason": reason})

    async def pause_execution(self, execution_id: str) -> StatusChanged:
        """Stop starting new steps; running ones finish."""
        return await self._call("POST", f"/executions/{execution_id}/pause", StatusChanged)

    async def resume_execution(self, execution_id: str) -> StatusChanged:
        """Resume a paused execution."""
        return await self._call("POST", f"/executions/{execution_id}/resume", StatusChanged)

    async def retry_execution(
        self, execution_id: str, *, note: str | None = None, input: Mapping[str, Any] | None = None
    ) -> RetryAccepted:
        """Run a failed execution's failed and cancelled steps again, with ``input`` replacing its input if given."""
        body = _retry_body(note=note, input=input)
        return await self._call("POST", f"/executions/{execution_id}/retry", RetryAccepted, body=body)

    async def preview_retry(self, execution_id: str, *, input: Mapping[str, Any] | None = None) -> RecoveryPreview:
        """Which steps ``retry_execution`` would run again (and which keep their output); changes nothing."""
        body = {**_retry_body(note=None, input=input), "dryRun": True}
        return await self._call("POST", f"/executions/{execution_id}/retry", RecoveryPreview, body=body)

    async def rerun_execution(
        self,
        execution_id: str,
        from_step: str,
        *,
        input: Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> RerunAccepted:
        """Start a new execution reusing the outputs of every step not downstream of ``from_step``."""
        body = _rerun_body(from_step, input=input, version=version)
        return await self._call("POST", f"/executions/{execution_id}/rerun", RerunAccepted, body=body)

    async def preview_rerun(
        self,
        execution_id: str,
        from_step: str,
        *,
        input: Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> RecoveryPreview:
        """Which steps ``rerun_execution`` would run again (and whose outputs it would reuse); starts nothing."""
        body = {**_rerun_body(from_step, input=input, version=version), "dryRun": True}
        return await self._call("POST", f"/executions/{execution_id}/rerun", RecoveryPreview, body=body)

    async def resolve_promise(self, execution_id: str, name: str, value: Any = None) -> PromiseSettlement:
        """Resolve the promise a ``wait`` step waits on; ``value`` becomes the step's output."""
        path = f"/executions/{execution_id}/promises/{name}/resolve"
        return await self._call("POST", path, PromiseSettlement, body={"value": value})

    async def reject_promise(
        self, execution_id: str, name: str, *, reason: str = "rejected", details: Mapping[str, Any] | None = None
    ) -> PromiseSettlement:
        """Reject a promise: its ``wait`` step fails."""
        path = f"/executions/{execution_id}/promises/{name}/reject"
        body = {"reason": reason, "details": None if details is None else dict(details)}
        return await self._call("POST", path, PromiseSettlement, body=body)

    # ----- logs and tasks

    async def get_execution_logs(
        self,
        execution_id: str,
        *,
        level: str | None = None,
        step_id: str | None = None,
        attempt: int | None = None,
        search: str | None = None,
        context: int = 0,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
    ) -> TaskLogPage:
        """A page of an execution's log records, oldest first.

        ``level`` keeps that level and above; ``search`` keeps the records whose message contains it (any case),
        each with up to ``context`` records of its task around it (``matched`` and ``group`` say which is which).
        A search page may hold fewer than ``limit`` matches while ``next_cursor`` (pass it as ``cursor``) is set.
        """
        params = {
            "level": level,
            "stepId": step_id,
            **_log_query(attempt, search, context),
            "limit": limit,
            "offset": offset,
            "cursor": cursor,
        }
        return await self._call("GET", f"/executions/{execution_id}/logs", TaskLogPage, params=params)

    async def download_execution_logs(self, execution_id: str, *, format: LogFormat = "text") -> AsyncIterator[bytes]:
        """Every log record of an execution as a file's bytes (text lines or a JSON array), streamed."""
        request = self._http.build_request(
            "GET", f"/executions/{execution_id}/logs/download", params={"format": format}
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as err:
            raise FlowlineApiError.unreachable(self.api_url, err) from err
        try:
            if response.is_error:
                await response.aread()
                raise FlowlineApiError.from_response(response)
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()

    async def get_task(self, task_id: str) -> Task:
        """One step execution, with its execution and workflow."""
        return await self._call("GET", f"/tasks/{task_id}", Task)

    async def get_task_logs(
        self,
        task_id: str,
        *,
        level: str | None = None,
        attempt: int | None = None,
        search: str | None = None,
        context: int = 0,
        limit: int = 100,
        offset: int = 0,
        cursor: str | None = None,
    ) -> TaskLogPage:
        """A page of one task's log records, filtered and searched as ``get_execution_logs``'s."""
        params = {
            "level": level,
            **_log_query(attempt, search, context),
            "limit": limit,
            "offset": offset,
            "cursor": cursor,
        }
        return await self._call("GET", f"/tasks/{task_id}/logs", TaskLogPage, params=params)

    # ----- live streams

    async def stream_execution(
        self,
        execution_id: str,
        *,
        consolidated: bool = False,
        last_event_id: str | None = None,
        max_reconnects: int = 5,
    ) -> AsyncIterator[StreamMessage]:
        """An execution's events (history, then live) until the api says it is finished.

        A final event followed by ``RETRY_REQUESTED`` does not end it (a retried execution runs on). A connection
        that drops, or that a proxy or a restarting api answers 502-504, is resumed with ``Last-Event-ID``, so no
        event is missed or repeated; ``max_reconnects`` failed attempts in a row give up with the last error.
        """
        path = f"/executions/{execution_id}/stream" + ("/consolidated" if consolidated else "")
        async for message in stream_messages(self._http, self.api_url, path, last_event_id, max_reconnects):
            yield message

    async def stream_task(self, task_id: str, *, max_reconnects: int = 5) -> AsyncIterator[StreamMessage]:
        """One task's events and log records (stored, then live) until a moment after the task finished.

        Resumed like ``stream_execution``, also after the api closes an idle stream; a resumed stream sends
        recent log records again, and those already received are not repeated.
        """
        received_logs: set[str] = set()
        async for message in stream_messages(
            self._http, self.api_url, f"/tasks/{task_id}/stream", None, max_reconnects
        ):
            if isinstance(message, StreamLog):
                if message.id in received_logs:
                    continue
                received_logs.add(message.id)
            yield message


def _retry_body(*, note: str | None, input: Mapping[str, Any] | None) -> dict[str, Any]:
    """The body of a retry: the note, and the new input when there is one."""
    body: dict[str, Any] = {"note": note}
    if input is not None:
        body["input"] = dict(input)
    return body


def _rerun_body(from_step: str, *, input: Mapping[str, Any] | None, version: int | None) -> dict[str, Any]:
    """The body of a rerun from ``from_step``: only what is given."""
    body: dict[str, Any] = {"fromStep": from_step}
    if input is not None:
        body["input"] = dict(input)
    if version is not None:
        body["version"] = version
    return body
