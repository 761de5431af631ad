"""Routes of executions."""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from flowline_api.dependencies import provide_execution_service
from flowline_api.domain.executions.schemas import Execution, PromiseReject, PromiseResolve, PromiseSettlement
from flowline_api.domain.executions.service import ExecutionService
from flowline_api.domain.openapi import problems

PATH = "/api/v1/tenants/dev/executions/0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a"
NO_EXECUTION = "execution 0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a does not exist"


class ExecutionController(Controller):
    """``/api/v1/tenants/{tenant}/executions``."""

    path = "/api/v1/tenants/{tenant:str}/executions"
    tags = ["executions"]
    dependencies = {"execution_service": Provide(provide_execution_service, sync_to_thread=False)}

    @get(
        "/{execution_id:uuid}",
        summary="Read an execution",
        responses=problems(PATH, not_found=NO_EXECUTION),
    )
    async def get_execution(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        execution_id: FromPath[uuid.UUID],
    ) -> Execution:
        """Status, timestamps, input, output, error and the steps of an execution."""
        return await execution_service.read(tenant_id, execution_id)

    @post(
        "/{execution_id:uuid}/promises/{name:str}/resolve",
        status_code=HTTP_200_OK,
        summary="Resolve a promise",
        responses=problems(
            f"{PATH}/promises/approval/resolve",
            not_found=NO_EXECUTION,
            conflict="promise 'approval' is already resolved",
            invalid=("body: Object contains unknown field `valeu`", ""),
        ),
    )
    async def resolve_promise(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        execution_id: FromPath[uuid.UUID],
        name: FromPath[str],
        data: JSONBody[PromiseResolve | None] = None,
    ) -> PromiseSettlement:
        """Resolve the promise a wait step waits on; the step completes with ``value`` as its output."""
        value = (data or PromiseResolve()).value
        return await execution_service.settle_promise(tenant_id, execution_id, name, value=value)

    @post(
        "/{execution_id:uuid}/promises/{name:str}/reject",
        status_code=HTTP_200_OK,
        summary="Reject a promise",
        responses=problems(
            f"{PATH}/promises/approval/reject",
            not_found=NO_EXECUTION,
            conflict="promise 'approval' is already resolved",
            invalid=("body: Object contains unknown field `valeu`", ""),
        ),
    )
    async def reject_promise(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        execution_id: FromPath[uuid.UUID],
        name: FromPath[str],
        data: JSONBody[PromiseReject | None] = None,
    ) -> PromiseSettlement:
        """Reject the promise a wait step waits on; the step fails with the reason."""
        rejection = data or PromiseReject()
        error = {"message": rejection.reason, **({"details": rejection.details} if rejection.details else {})}
        return await execution_service.settle_promise(tenant_id, execution_id, name, error=error)
