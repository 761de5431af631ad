"""Routes of executions."""

from __future__ import annotations

import uuid

from litestar import Controller, get
from litestar.di import Provide

from flowline_api.dependencies import provide_execution_service
from flowline_api.domain.executions.schemas import Execution
from flowline_api.domain.executions.service import ExecutionService


class ExecutionController(Controller):
    """``/api/v1/tenants/{tenant}/executions``."""

    path = "/api/v1/tenants/{tenant:str}/executions"
    tags = ["executions"]
    dependencies = {"execution_service": Provide(provide_execution_service, sync_to_thread=False)}

    @get("/{execution_id:uuid}", summary="Read an execution")
    async def get_execution(
        self, tenant_id: uuid.UUID, execution_service: ExecutionService, execution_id: uuid.UUID
    ) -> Execution:
        """Status, timestamps, input, output, error and the steps of an execution."""
        return await execution_service.read(tenant_id, execution_id)
