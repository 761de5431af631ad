"""Routes of tasks (the step executions of every execution): ``GET /tasks/{taskId}``."""

from __future__ import annotations

import uuid

from flowline_schemas.executions import Task
from litestar import Controller, get
from litestar.di import NamedDependency, Provide

from flowline_api.auth import VIEWER
from flowline_api.domain.executions.examples import TASK_EXAMPLE, TASK_ID
from flowline_api.domain.executions.service import ExecutionService, provide_execution_service
from flowline_api.domain.openapi import example_response, problems
from flowline_api.path_ids import TaskId


class TaskController(Controller):
    """``/api/v1/tenants/{tenant}/tasks``."""

    path = "/tasks"
    tags = ["tasks"]
    dependencies = {"execution_service": Provide(provide_execution_service, sync_to_thread=False)}

    @get(
        "/{task_id:str}",
        opt=VIEWER,
        summary="Read a task",
        responses={
            **example_response(Task, "one step execution", TASK_EXAMPLE),
            **problems(
                f"/api/v1/tenants/dev/tasks/{TASK_ID}",
                bad_request="task_id: Invalid UUID",
                not_found=f"task {TASK_ID} does not exist",
            ),
        },
    )
    async def get_task(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        execution_service: NamedDependency[ExecutionService],
        task_id: TaskId,
    ) -> Task:
        """One step execution by its `taskId`.

        Its execution and workflow, step, type, status, attempt count, timestamps, input, output and error.
        Its attempts are at `GET /executions/{executionId}/tasks/{taskId}/attempts`.
        """
        return await execution_service.task(tenant_id, task_id)
