"""The console's execution actions: cancel, pause, resume, retry, rerun, and settling a promise.

Each form posts here; the action is the API's own service call, under the same role (operator) and ownership
rules. Done, it redirects to the execution page (the page follows what the engine does from there over its live
stream); refused, the execution page comes back with the API's message (a 409's detail) above the graph.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline.errors import ClientError, FlowlineError, ValidationFailed
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from flowline_api.auth import OPERATOR
from flowline_api.console.executions import PageReads, execution_context
from flowline_api.domain.control.schemas import RerunRequest, RetryRequest
from flowline_api.domain.control.service import ControlService
from flowline_api.path_ids import ExecutionId
from flowline_api.rate_limits import EXECUTION_START

Action = Callable[[], Awaitable[Any]]


def json_field(form: Any, name: str) -> Any:
    """A form field holding JSON (empty: None).

    Raises:
        ValidationFailed: not JSON.
    """
    text = str(form.get(name) or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValidationFailed(f"{name}: not JSON ({err.msg} at line {err.lineno})", pointer=f"/{name}") from err


def _retry_request(form: Any, current_input: Any) -> RetryRequest:
    """A retry as the console's form asks for it: a note, and a new input (a JSON object) when it was edited.

    The form comes filled with the execution's input: sent back unchanged (or emptied), the retry keeps it.

    Raises:
        ValidationFailed: the input is not a JSON object.
    """
    new_input = json_field(form, "input")
    if new_input is not None and not isinstance(new_input, dict):
        raise ValidationFailed("input: must be a JSON object", pointer="/input")
    note = str(form.get("note") or "").strip()[:2000] or None
    return RetryRequest(note=note, input=None if new_input == current_input else new_input)


class ConsoleActionController(Controller):
    """``POST /ui/executions/{id}/<action>``."""

    path = "/executions/{execution_id:str}"
    opt = OPERATOR

    async def _answer(
        self,
        request: Request[Principal, Any, State],
        execution_id: uuid.UUID,
        action: Action,
        done: Callable[[Any], tuple[str, str]],
        reads: PageReads,
    ) -> Redirect | Template:
        """Run the action; redirect to the page it names, or show the execution page with the refusal."""
        try:
            target, notice = done(await action())
        except FlowlineError as error:
            if not isinstance(error, ClientError):
                raise
            context = await execution_context(request, reads, execution_id, error=error.detail)
            return Template("execution.html", context=context, status_code=error.status_code)
        return Redirect(f"{target}?{urlencode({'notice': notice})}", status_code=303)

    @post("/cancel", name="console:cancel")
    async def cancel(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        tenant_id: NamedDependency[uuid.UUID],
        actor: NamedDependency[Actor],
        control_service: NamedDependency[ControlService],
        page_reads: NamedDependency[PageReads],
    ) -> Redirect | Template:
        """Cancel the execution, with an optional reason."""
        form = await request.form()
        reason = str(form.get("reason") or "").strip() or None
        page = f"/ui/executions/{execution_id}"
        return await self._answer(
            request,
            execution_id,
            lambda: control_service.cancel(tenant_id, execution_id, reason, actor),
            lambda answer: (page, f"cancel requested; the execution is {answer.status}"),
            page_reads,
        )

    @post("/pause", name="console:pause")
    async def pause(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        tenant_id: NamedDependency[uuid.UUID],
        actor: NamedDependency[Actor],
        control_service: NamedDependency[ControlService],
        page_reads: NamedDependency[PageReads],
    ) -> Redirect | Template:
        """Pause the execution: no new steps start."""
        page = f"/ui/executions/{execution_id}"
        return await self._answer(
            request,
            execution_id,
            lambda: control_service.pause(tenant_id, execution_id, actor),
            lambda answer: (page, "paused"),
            page_reads,
        )

    @post("/resume", name="console:resume")
    async def resume(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        tenant_id: NamedDependency[uuid.UUID],
        actor: NamedDependency[Actor],
        control_service: NamedDependency[ControlService],
        page_reads: NamedDependency[PageReads],
    ) -> Redirect | Template:
        """Resume a paused execution."""
        page = f"/ui/executions/{execution_id}"
        return await self._answer(
            request,
            execution_id,
            lambda: control_service.resume(tenant_id, execution_id, actor),
            lambda answer: (page, f"resumed; the execution is {answer.status}"),
            page_reads,
        )

    @post("/retry", name="console:retry")
    async def retry(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        tenant_id: NamedDependency[uuid.UUID],
        actor: NamedDependency[Actor],
        control_service: NamedDependency[ControlService],
        page_reads: NamedDependency[PageReads],
    ) -> Redirect | Template:
        """Retry a failed execution from its failed steps, with an optional note and edited input."""
        form = await request.form()
        page = f"/ui/executions/{execution_id}"

        async def retry() -> Any:
            current = await page_reads.executions.read(tenant_id, execution_id)
            return await control_service.retry(tenant_id, execution_id, _retry_request(form, current.input), actor)

        return await self._answer(request, execution_id, retry, lambda answer: (page, "retry requested"), page_reads)

    @post("/retry/preview", name="console:retry-preview")
    async def preview_retry(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        tenant_id: NamedDependency[uuid.UUID],
        control_service: NamedDependency[ControlService],
        page_reads: NamedDependency[PageReads],
    ) -> Template:
        """The execution page with the retry form open as filled in, and the steps the retry would run again."""
        form = await request.form()
        filled = {"note": str(form.get("note") or ""), "input": str(form.get("input") or "")}
        try:
            current = await page_reads.executions.read(tenant_id, execution_id)
            preview = await control_service.preview_retry(tenant_id, execution_id, _retry_request(form, current.input))
        except ClientError as error:
            context = await execution_context(request, page_reads, execution_id, error=error.detail, retry_form=filled)
            return Template("execution.html", context=context, status_code=error.status_code)
        context = await execution_context(request, page_reads, execution_id, retry_form={**filled, "preview": preview})
        return Template("execution.html", context=context)

    @post("/rerun", opt=EXECUTION_START, name="console:rerun")
    async def rerun(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        tenant_id: NamedDependency[uuid.UUID],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        control_service: NamedDependency[ControlService],
        page_reads: NamedDependency[PageReads],
    ) -> Redirect | Template:
        """Start a new execution that runs a step and what follows it again, with new input or another version."""
        form = await request.form()

        async def start() -> Any:
            new_input = json_field(form, "input")
            if new_input is not None and not isinstance(new_input, dict):
                raise ValidationFailed("input: must be a JSON object", pointer="/input")
            version = str(form.get("version") or "").strip()
            if version and not version.isdigit():
                raise ValidationFailed(f"version: {version!r} is not a version number", pointer="/version")
            request_body = RerunRequest(
                from_step=str(form.get("fromStep") or ""), input=new_input, version=int(version) if version else None
            )
            return await control_service.rerun(tenant_id, execution_id, request_body, caller, actor)

        return await self._answer(
            request,
            execution_id,
            start,
            lambda answer: (f"/ui/executions/{answer.execution_id}", f"rerun of {execution_id}"),
            page_reads,
        )

    @post("/promises/{name:str}/{outcome:str}", name="console:promise")
    async def settle_promise(
        self,
        request: Request[Principal, Any, State],
        execution_id: ExecutionId,
        name: FromPath[str],
        outcome: FromPath[str],
        tenant_id: NamedDependency[uuid.UUID],
        actor: NamedDependency[Actor],
        page_reads: NamedDependency[PageReads],
    ) -> Redirect | Template:
        """Resolve a promise with a JSON value, or reject it with a reason."""
        form = await request.form()
        page = f"/ui/executions/{execution_id}"

        async def settle() -> Any:
            if outcome == "resolve":
                value = json_field(form, "value")
                return await page_reads.executions.settle_promise(
                    tenant_id, execution_id, name, actor=actor, value=value
                )
            if outcome != "reject":
                raise ClientError(f"{outcome!r} is neither resolve nor reject")
            reason = str(form.get("reason") or "").strip() or "rejected in the console"
            error = {"message": reason}
            return await page_reads.executions.settle_promise(tenant_id, execution_id, name, actor=actor, error=error)

        return await self._answer(
            request, execution_id, settle, lambda answer: (page, f"promise {name} {answer.status}"), page_reads
        )
