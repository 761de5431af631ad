"""The console's execution actions: cancel, pause, resume, retry, rerun, and settling a promise.

Each form posts here; the action is the API's own service call, under the same role (operator) and ownership
rules. Done, it redirects to the execution page (the page follows what the engine does from there over its live
stream); refused, the execution page comes back with the API's message (a 409's detail) above the graph.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline.errors import ClientError, ValidationFailed
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
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


@dataclass(frozen=True)
class ExecutionAction:
    """An action's request on one execution: who asks, the services it calls, and how its answer goes back."""

    request: Request[Principal, Any, State]
    execution_id: uuid.UUID
    tenant_id: uuid.UUID
    actor: Actor
    control: ControlService
    reads: PageReads

    async def answer(
        self, run: Action, notice: Callable[[Any], str], goes_to: Callable[[Any], str] | None = None
    ) -> Redirect | Template:
        """Run the action; redirect with its notice, or show the execution page with the refusal.

        The redirect goes to the execution's page, or to the one ``goes_to`` names from the action's answer.
        """
        try:
            done = await run()
        except ClientError as error:
            return await self.refused(error)
        target = goes_to(done) if goes_to else f"/ui/executions/{self.execution_id}"
        return Redirect(f"{target}?{urlencode({'notice': notice(done)})}", status_code=303)

    async def refused(self, error: ClientError, **extra: Any) -> Template:
        """The execution page with the refusal's message (and what ``extra`` adds), under the refusal's status."""
        context = await execution_context(self.request, self.reads, self.execution_id, error=error.detail, **extra)
        return Template("execution.html", context=context, status_code=error.status_code)


def provide_execution_action(
    request: Request[Principal, Any, State],
    execution_id: ExecutionId,
    tenant_id: NamedDependency[uuid.UUID],
    actor: NamedDependency[Actor],
    control_service: NamedDependency[ControlService],
    page_reads: NamedDependency[PageReads],
) -> ExecutionAction:
    """The action this request asks for on the execution of its path."""
    return ExecutionAction(request, execution_id, tenant_id, actor, control_service, page_reads)


class ConsoleActionController(Controller):
    """``POST /ui/executions/{id}/<action>``."""

    path = "/executions/{execution_id:str}"
    opt = OPERATOR
    dependencies = {"action": Provide(provide_execution_action, sync_to_thread=False)}

    @post("/cancel", name="console:cancel")
    async def cancel(self, action: NamedDependency[ExecutionAction]) -> Redirect | Template:
        """Cancel the execution, with an optional reason."""
        form = await action.request.form()
        reason = str(form.get("reason") or "").strip() or None
        return await action.answer(
            lambda: action.control.cancel(action.tenant_id, action.execution_id, reason, action.actor),
            lambda answer: f"cancel requested; the execution is {answer.status}",
        )

    @post("/pause", name="console:pause")
    async def pause(self, action: NamedDependency[ExecutionAction]) -> Redirect | Template:
        """Pause the execution: no new steps start."""
        return await action.answer(
            lambda: action.control.pause(action.tenant_id, action.execution_id, action.actor), lambda _: "paused"
        )

    @post("/resume", name="console:resume")
    async def resume(self, action: NamedDependency[ExecutionAction]) -> Redirect | Template:
        """Resume a paused execution."""
        return await action.answer(
            lambda: action.control.resume(action.tenant_id, action.execution_id, action.actor),
            lambda answer: f"resumed; the execution is {answer.status}",
        )

    @post("/retry", name="console:retry")
    async def retry(self, action: NamedDependency[ExecutionAction]) -> Redirect | Template:
        """Retry a failed execution from its failed steps, with an optional note and edited input."""
        form = await action.request.form()

        async def retry() -> Any:
            current = await action.reads.executions.read(action.tenant_id, action.execution_id)
            retry_request = _retry_request(form, current.input)
            return await action.control.retry(action.tenant_id, action.execution_id, retry_request, action.actor)

        return await action.answer(retry, lambda _: "retry requested")

    @post("/retry/preview", name="console:retry-preview")
    async def preview_retry(self, action: NamedDependency[ExecutionAction]) -> Template:
        """The execution page with the retry form open as filled in, and the steps the retry would run again."""
        form = await action.request.form()
        filled = {"note": str(form.get("note") or ""), "input": str(form.get("input") or "")}
        try:
            current = await action.reads.executions.read(action.tenant_id, action.execution_id)
            retry_request = _retry_request(form, current.input)
            preview = await action.control.preview_retry(action.tenant_id, action.execution_id, retry_request)
        except ClientError as error:
            return await action.refused(error, retry_form=filled)
        context = await execution_context(
            action.request, action.reads, action.execution_id, retry_form={**filled, "preview": preview}
        )
        return Template("execution.html", context=context)

    @post("/rerun", opt=EXECUTION_START, name="console:rerun")
    async def rerun(
        self, action: NamedDependency[ExecutionAction], caller: NamedDependency[Principal]
    ) -> Redirect | Template:
        """Start a new execution that runs a step and what follows it again, with new input or another version."""
        form = await action.request.form()

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
            return await action.control.rerun(action.tenant_id, action.execution_id, request_body, caller, action.actor)

        return await action.answer(
            start,
            lambda _: f"rerun of {action.execution_id}",
            goes_to=lambda answer: f"/ui/executions/{answer.execution_id}",
        )

    @post("/promises/{name:str}/{outcome:str}", name="console:promise")
    async def settle_promise(
        self, action: NamedDependency[ExecutionAction], name: FromPath[str], outcome: FromPath[str]
    ) -> Redirect | Template:
        """Resolve a promise with a JSON value, or reject it with a reason."""
        form = await action.request.form()
        executions = action.reads.executions

        async def settle() -> Any:
            if outcome == "resolve":
                value = json_field(form, "value")
                return await executions.settle_promise(
                    action.tenant_id, action.execution_id, name, actor=action.actor, value=value
                )
            if outcome != "reject":
                raise ClientError(f"{outcome!r} is neither resolve nor reject")
            reason = str(form.get("reason") or "").strip() or "rejected in the console"
            error = {"message": reason}
            return await executions.settle_promise(
                action.tenant_id, action.execution_id, name, actor=action.actor, error=error
            )

        return await action.answer(settle, lambda answer: f"promise {name} {answer.status}")
