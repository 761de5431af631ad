"""Routes of the execution commands, and deleting a finished execution."""

from __future__ import annotations

import uuid

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline_schemas.control import Cancelled, RecoveryPreview, RerunAccepted, RetryAccepted, StatusChanged
from litestar import Controller, Response, delete, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from flowline_api.auth import OPERATOR
from flowline_api.domain.control.examples import EXECUTION_ID, NOT_FOUND, PATH
from flowline_api.domain.control.schemas import CancelRequest, RerunRequest, RetryRequest
from flowline_api.domain.control.service import ControlService, provide_control_service
from flowline_api.domain.openapi import problems
from flowline_api.path_ids import MALFORMED_ID_IS_NOT_FOUND, ExecutionId
from flowline_api.rate_limits import EXECUTION_START


class ExecutionControlController(Controller):
    """``/api/v1/tenants/{tenant}/executions/{id}/cancel|pause|resume|retry|rerun``, and ``DELETE …/{id}``."""

    path = "/executions"
    opt = {MALFORMED_ID_IS_NOT_FOUND: True}
    tags = ["executions"]
    dependencies = {"control_service": Provide(provide_control_service, sync_to_thread=False)}

    @post(
        "/{execution_id:str}/cancel",
        opt=OPERATOR,
        status_code=HTTP_200_OK,
        summary="Cancel an execution",
        responses={
            202: ResponseSpec(data_container=Cancelled, description="requested; the engine has not applied it yet"),
            **problems(
                f"{PATH}/cancel",
                not_found=NOT_FOUND,
                conflict=f"execution {EXECUTION_ID} is already completed",
                invalid=("/reason: Expected `str | null`, got `int`", "/reason"),
            ),
        },
    )
    async def cancel(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        control_service: NamedDependency[ControlService],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
        data: JSONBody[CancelRequest | None] = None,
    ) -> Response[Cancelled]:
        """Cancel a pending, running or paused execution.

        Running attempts are stopped (agent and http calls aborted), timers cancelled, pending promises
        rejected and child executions cancelled. The answer is 200 with status ``cancelled`` once the engine
        applied it (normally within milliseconds), or 202 with the current status if it takes longer.
        Cancelling a finished execution is 409.
        """
        cancelled = await control_service.cancel(tenant_id, execution_id, (data or CancelRequest()).reason, actor)
        return Response(cancelled, status_code=HTTP_200_OK if cancelled.status == "cancelled" else HTTP_202_ACCEPTED)

    @delete(
        "/{execution_id:str}",
        opt=OPERATOR,
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a finished execution",
        responses=problems(
            PATH,
            not_found=NOT_FOUND,
            conflict=f"execution {EXECUTION_ID} is running; only a finished execution is deleted",
        ),
    )
    async def delete_execution(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        control_service: NamedDependency[ControlService],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
    ) -> None:
        """Remove a finished root execution with everything under it, as retention does, at once.

        Its steps, attempts, timers, promises, events, task logs and child executions go with it; afterwards every
        route answers 404 for it. With `FLOWLINE_ARCHIVE_DIR` set it is archived first (503 if that fails, and
        nothing is removed). A pending, running or paused execution is 409 naming its status; so is a child (delete
        its root) and a root with a descendant still running. The deletion is in the audit log.
        """
        await control_service.delete(tenant_id, execution_id, actor)

    @post(
        "/{execution_id:str}/pause",
        opt=OPERATOR,
        status_code=HTTP_200_OK,
        summary="Pause an execution",
        responses=problems(
            f"{PATH}/pause",
            not_found=NOT_FOUND,
            conflict=f"execution {EXECUTION_ID} is completed; only a running or pending one pauses",
        ),
    )
    async def pause(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        control_service: NamedDependency[ControlService],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
    ) -> StatusChanged:
        """Start no new step until resumed; running attempts finish and their results are recorded."""
        return await control_service.pause(tenant_id, execution_id, actor)

    @post(
        "/{execution_id:str}/resume",
        opt=OPERATOR,
        status_code=HTTP_200_OK,
        summary="Resume a paused execution",
        responses=problems(
            f"{PATH}/resume",
            not_found=NOT_FOUND,
            conflict=f"execution {EXECUTION_ID} is running; only a paused one resumes",
        ),
    )
    async def resume(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        control_service: NamedDependency[ControlService],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
    ) -> StatusChanged:
        """Go on where the execution paused (or start it, if it paused before starting)."""
        return await control_service.resume(tenant_id, execution_id, actor)

    @post(
        "/{execution_id:str}/rerun",
        opt=OPERATOR | EXECUTION_START,
        status_code=HTTP_202_ACCEPTED,
        summary="Rerun an execution from a step",
        responses={
            200: ResponseSpec(data_container=RecoveryPreview, description="with dryRun: what the rerun would run"),
            **problems(
                f"{PATH}/rerun",
                not_found=f"execution {EXECUTION_ID} has no step 'summarise'",
                conflict="version 3 of 'demo.hello' has no step 'summarise'",
                invalid=("body: Object missing required field `fromStep`", ""),
            ),
        },
    )
    async def rerun(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        control_service: NamedDependency[ControlService],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
        data: JSONBody[RerunRequest],
    ) -> Response[RerunAccepted | RecoveryPreview]:
        """Start a new execution (linked by ``rerunOf``) that runs ``fromStep`` and everything after it again.

        Every other step keeps the output it had in the rerun execution. ``input`` replaces the input and
        ``version`` picks another version of the workflow (default: the rerun execution's). An unknown step
        is 404; a version that lacks ``fromStep`` or a step whose output would be reused is 409 naming them.
        With ``dryRun``, nothing starts: the answer (200) lists the steps that would run again and those whose
        output would be reused, after the same checks (an input the schema refuses is 422).
        """
        if data.dry_run:
            preview = await control_service.preview_rerun(tenant_id, execution_id, data)
            return Response(preview, status_code=HTTP_200_OK)
        return Response(await control_service.rerun(tenant_id, execution_id, data, caller, actor))

    @post(
        "/{execution_id:str}/retry",
        opt=OPERATOR,
        status_code=HTTP_200_OK,
        summary="Retry a failed execution",
        responses=problems(
            f"{PATH}/retry",
            not_found=NOT_FOUND,
            conflict=f"execution {EXECUTION_ID} is completed; only a failed one is retried",
            invalid=('/input/amount: "ten" is not of type "integer"', "/input/amount"),
        ),
    )
    async def retry(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        control_service: NamedDependency[ControlService],
        actor: NamedDependency[Actor],
        execution_id: ExecutionId,
        data: JSONBody[RetryRequest | None] = None,
    ) -> RetryAccepted | RecoveryPreview:
        """Resume a failed execution from its failed (and cancelled) steps; completed steps keep their output.

        The execution becomes pending, its error is cleared, and a RETRY_REQUESTED event records the note
        and the previous error. ``input`` replaces the execution's input (checked against its version's input
        schema: 422 naming the field): the steps that run again render their templates from it. With
        ``dryRun``, nothing changes: the answer lists the steps that would run again and those that keep
        their output, after the same checks.
        """
        request = data or RetryRequest()
        if request.dry_run:
            return await control_service.preview_retry(tenant_id, execution_id, request)
        return await control_service.retry(tenant_id, execution_id, request, actor)
