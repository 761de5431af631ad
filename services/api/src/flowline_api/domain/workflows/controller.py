"""Routes of workflow definitions."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

import msgspec
from flowline.errors import ClientError
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from flowline_api.dependencies import provide_workflow_service
from flowline_api.domain.workflows.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    ExecuteRequest,
    ExecutionAccepted,
    Workflow,
    WorkflowCreate,
)
from flowline_api.domain.workflows.service import WorkflowService


class WorkflowController(Controller):
    """``/api/v1/tenants/{tenant}/workflows``."""

    path = "/api/v1/tenants/{tenant:str}/workflows"
    tags = ["workflows"]
    dependencies = {"workflow_service": Provide(provide_workflow_service, sync_to_thread=False)}

    @post("/", status_code=HTTP_201_CREATED, summary="Define a workflow")
    async def create_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        data: JSONBody[WorkflowCreate],
    ) -> Workflow:
        """Validate and store a workflow definition as version 1."""
        return await workflow_service.create(tenant_id, data)

    @get("/{ref:str}", summary="Read a workflow")
    async def get_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        ref: FromPath[str],
    ) -> Workflow:
        """The latest version of a workflow."""
        return await workflow_service.read(tenant_id, ref)

    @post("/{ref:str}/execute", status_code=HTTP_202_ACCEPTED, summary="Start an execution")
    async def execute_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        ref: FromPath[str],
        data: JSONBody[ExecuteRequest | None] = None,
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200, required=False),
        ] = None,
    ) -> Response[ExecutionAccepted]:
        """Start an execution; 202 at once, or 200 with the existing one for a repeated idempotency key.

        The key may come as the ``Idempotency-Key`` header or the ``idempotencyKey`` field.
        """
        request = data or ExecuteRequest()
        if idempotency_key is not None:
            if not re.match(IDEMPOTENCY_KEY_PATTERN, idempotency_key):
                raise ClientError("Idempotency-Key: keys starting with 'child:' or 'kafka:' are reserved")
            if request.idempotency_key not in (None, idempotency_key):
                raise ClientError("the Idempotency-Key header and the idempotencyKey field differ")
            request = msgspec.structs.replace(request, idempotency_key=idempotency_key)
        started = await workflow_service.execute(tenant_id, ref, request)
        return Response(
            ExecutionAccepted(execution_id=str(started.id), status=started.status, created_at=started.created_at),
            status_code=HTTP_202_ACCEPTED if started.created else HTTP_200_OK,
        )
