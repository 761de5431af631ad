"""Routes of workflow definitions."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from flowline.db.audit import Actor
from flowline.db.workflows import WorkflowFilters
from flowline_schemas.workflows import ExecutionAccepted, Workflow
from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, HeaderParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.domain.executions.service import Start, provide_execution_service, provide_start
from flowline_api.domain.openapi import NO_TENANT, example_response, page_example, problems
from flowline_api.domain.workflows.examples import (
    DESCRIPTION_CLEARED_EXAMPLE,
    EXECUTE_EXAMPLE,
    EXECUTION_ACCEPTED_EXAMPLE,
    INVALID_DEFINITION,
    PATH,
    VERSION_EXAMPLE,
    WORKFLOW_CREATE_EXAMPLE,
    WORKFLOW_EXAMPLE,
    WORKFLOW_METADATA_EXAMPLE,
    WORKFLOW_STATE_EXAMPLE,
    WORKFLOW_SUMMARY_EXAMPLE,
)
from flowline_api.domain.workflows.schemas import (
    ExecuteRequest,
    WorkflowCreate,
    WorkflowUpdate,
    with_idempotency_header,
)
from flowline_api.domain.workflows.service import WorkflowService, provide_workflow_service
from flowline_api.pagination import Cursor, Limit, Offset, WorkflowSummaryPage, WorkflowVersionPage
from flowline_api.rate_limits import EXECUTION_START

UpdateBody = Annotated[
    WorkflowUpdate,
    Body(
        description="Fields to change; absent fields keep their value",
        examples=[
            Example(summary="rename and disable", value=WORKFLOW_METADATA_EXAMPLE),
            Example(summary="clear the description", value=DESCRIPTION_CLEARED_EXAMPLE),
            Example(summary="the whole state, with a new definition", value=WORKFLOW_STATE_EXAMPLE),
        ],
    ),
]
TagsFilter = Annotated[
    list[str] | None,
    QueryParameter(
        description="keep workflows with any of these tags (repeat the parameter or separate with commas)",
        max_items=50,
        required=False,
    ),
]
EnabledFilter = Annotated[bool | None, QueryParameter(description="keep enabled or disabled workflows", required=False)]
SearchFilter = Annotated[
    str | None,
    QueryParameter(
        description="case-insensitive text in the name, label or description", max_length=200, required=False
    ),
]
PackFilter = Annotated[str | None, QueryParameter(description="keep the workflows of this pack", required=False)]
Sort = Annotated[Literal["name", "createdAt", "updatedAt"], QueryParameter(description="sort key")]
Order = Annotated[
    Literal["asc", "desc"] | None,
    QueryParameter(description="sort direction; ascending by name, newest first by time", required=False),
]


def split_tags(tags: list[str] | None) -> list[str] | None:
    """``?tags=a,b&tags=c`` → ``["a", "b", "c"]``."""
    if not tags:
        return None
    return [tag for value in tags for tag in value.split(",") if tag] or None


class WorkflowController(Controller):
    """``/api/v1/tenants/{tenant}/workflows``."""

    path = "/workflows"
    tags = ["workflows"]
    dependencies = {
        "workflow_service": Provide(provide_workflow_service, sync_to_thread=False),
        "execution_service": Provide(provide_execution_service, sync_to_thread=False),
    }

    @post(
        "/",
        opt=OPERATOR,
        status_code=HTTP_201_CREATED,
        summary="Define a workflow",
        responses={
            **example_response(Workflow, "the workflow as version 1", WORKFLOW_EXAMPLE, HTTP_201_CREATED),
            **problems(
                PATH,
                not_found="pack 'demo' does not exist",
                conflict="workflow 'demo.hello' already exists",
                invalid=INVALID_DEFINITION,
                too_large="a workflow may have at most 500 steps, this one has 501",
            ),
        },
    )
    async def create_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        actor: NamedDependency[Actor],
        data: Annotated[
            WorkflowCreate, Body(examples=[Example(summary="a two-step workflow", value=WORKFLOW_CREATE_EXAMPLE)])
        ],
    ) -> Workflow:
        """Validate a workflow and store it as version 1 in an existing pack (the first part of its ref).

        Validation refuses duplicate step ids, unknown `needs`, cycles, unknown step types, actions and
        agents, templates that do not parse, invalid JSON Schemas and definitions over the size limits;
        the problem names the JSON pointer.
        """
        return await workflow_service.create(tenant_id, data, actor)

    @get(
        "/",
        opt=VIEWER,
        summary="List workflows",
        responses={
            **example_response(WorkflowSummaryPage, "a page of workflows", page_example(WORKFLOW_SUMMARY_EXAMPLE)),
            **problems(PATH, not_found=NO_TENANT),
        },
    )
    async def list_workflows(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        tags: TagsFilter = None,
        enabled: EnabledFilter = None,
        search: SearchFilter = None,
        pack: PackFilter = None,
        sort: Sort = "createdAt",
        order: Order = None,
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> WorkflowSummaryPage:
        """Live workflows without their definitions, filtered and sorted.

        `total` counts every match; pass `nextCursor` back as `cursor` for the next page (stable while
        workflows are added), or page with `offset`.
        """
        filters = WorkflowFilters(tags=split_tags(tags), enabled=enabled, search=search or None, pack=pack)
        return await workflow_service.list(
            tenant_id, filters, sort=sort, order=order, limit=limit, offset=offset, cursor=cursor
        )

    @get(
        "/{ref:str}",
        opt=VIEWER,
        summary="Read a workflow",
        responses={
            **example_response(Workflow, "the latest version", WORKFLOW_EXAMPLE),
            **problems(f"{PATH}/demo.hello", not_found="workflow 'demo.hello' does not exist"),
        },
    )
    async def get_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        ref: FromPath[str],
    ) -> Workflow:
        """The latest version of a workflow with its metadata."""
        return await workflow_service.read(tenant_id, ref)

    @put(
        "/{ref:str}",
        opt=OPERATOR,
        summary="Update a workflow",
        responses={
            **example_response(Workflow, "the workflow after the update", WORKFLOW_EXAMPLE),
            **problems(
                f"{PATH}/demo.hello",
                not_found="workflow 'demo.hello' does not exist",
                invalid=INVALID_DEFINITION,
                too_large="the definition is 1200000 bytes; the limit is 1000000",
            ),
        },
    )
    async def update_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        actor: NamedDependency[Actor],
        ref: FromPath[str],
        data: UpdateBody,
    ) -> Workflow:
        """Change the fields the body gives; absent fields keep their value (the same as PATCH).

        The body may be a workflow's whole state or only some of its fields. A changed `definition`,
        `inputSchema` or `outputSchema` creates the next version; changing only `label`, `description`, `tags`,
        `enabled` or `public` keeps the version. Running executions keep theirs.
        """
        return await workflow_service.update(tenant_id, ref, data, actor)

    @patch(
        "/{ref:str}",
        opt=OPERATOR,
        summary="Change some fields of a workflow",
        responses={
            **example_response(Workflow, "the workflow after the change", WORKFLOW_EXAMPLE),
            **problems(
                f"{PATH}/demo.hello",
                not_found="workflow 'demo.hello' does not exist",
                invalid=("/enabled: Expected `bool`, got `null`", "/enabled"),
                too_large="the definition is 1200000 bytes; the limit is 1000000",
            ),
        },
    )
    async def patch_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        actor: NamedDependency[Actor],
        ref: FromPath[str],
        data: UpdateBody,
    ) -> Workflow:
        """A JSON merge patch (RFC 7396) of the workflow's fields, as `application/merge-patch+json` or JSON.

        Absent fields keep their value, `null` clears `label`, `description`, `inputSchema` or `outputSchema`,
        and a `definition` replaces the whole definition. A changed `definition` or schema creates the next
        version; other fields keep it; values equal to the stored ones change nothing.
        """
        return await workflow_service.update(tenant_id, ref, data, actor)

    @delete(
        "/{ref:str}",
        opt=OPERATOR,
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a workflow",
        responses=problems(f"{PATH}/demo.hello", not_found="workflow 'demo.hello' does not exist"),
    )
    async def delete_workflow(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        actor: NamedDependency[Actor],
        ref: FromPath[str],
    ) -> None:
        """Soft-delete a workflow; its ref can be defined again.

        It disappears from lists and reads (404), its executions still show it, and a new workflow with the
        same ref starts again from version 1.
        """
        await workflow_service.delete(tenant_id, ref, actor)

    @get(
        "/{ref:str}/versions",
        opt=VIEWER,
        summary="List the versions of a workflow",
        responses={
            **example_response(WorkflowVersionPage, "a page of versions, newest first", page_example(VERSION_EXAMPLE)),
            **problems(f"{PATH}/demo.hello/versions", not_found="workflow 'demo.hello' does not exist"),
        },
    )
    async def list_versions(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        ref: FromPath[str],
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> WorkflowVersionPage:
        """The immutable versions of a workflow, newest first; read one for its definition."""
        return await workflow_service.list_versions(tenant_id, ref, limit=limit, offset=offset, cursor=cursor)

    @get(
        "/{ref:str}/versions/{version:int}",
        opt=VIEWER,
        summary="Read a version of a workflow",
        responses={
            **example_response(Workflow, "the workflow with this version's definition", WORKFLOW_EXAMPLE),
            **problems(f"{PATH}/demo.hello/versions/7", not_found="workflow 'demo.hello' has no version 7"),
        },
    )
    async def get_version(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        ref: FromPath[str],
        version: FromPath[int],
    ) -> Workflow:
        """A workflow with the definition and schemas of one of its versions (metadata is the current one)."""
        return await workflow_service.read(tenant_id, ref, version)

    @post(
        "/{ref:str}/execute",
        opt=OPERATOR | EXECUTION_START,
        dependencies={"start": Provide(provide_start)},
        status_code=HTTP_202_ACCEPTED,
        summary="Start an execution",
        responses={
            **example_response(
                ExecutionAccepted, "the execution, started", EXECUTION_ACCEPTED_EXAMPLE, HTTP_202_ACCEPTED
            ),
            **example_response(
                ExecutionAccepted, "the execution an earlier request with this key started", EXECUTION_ACCEPTED_EXAMPLE
            ),
            **problems(
                f"{PATH}/demo.hello/execute",
                not_found="workflow 'demo.hello' does not exist",
                conflict="workflow 'demo.hello' is disabled",
                invalid=("/input: 'name' is a required property", "/input"),
            ),
        },
    )
    async def execute_workflow(
        self,
        start: NamedDependency[Start],
        ref: FromPath[str],
        data: Annotated[
            ExecuteRequest | None, Body(examples=[Example(summary="input and a key", value=EXECUTE_EXAMPLE)])
        ] = None,
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200, required=False),
        ] = None,
    ) -> Response[ExecutionAccepted]:
        """Start an execution of the latest version, or of `version`.

        202 at once, or 200 with the existing execution for a repeated idempotency key. The key may come
        as the `Idempotency-Key` header or the `idempotencyKey` field. A disabled workflow is 409;
        input that breaks the workflow's `inputSchema` is 422 with the failing JSON pointer.
        """
        request = with_idempotency_header(data or ExecuteRequest(), idempotency_key)
        started = await start.service.start(start.tenant_id, ref, request, start.caller, start.actor)
        return Response(
            ExecutionAccepted(execution_id=str(started.id), status=started.status, created_at=started.created_at),
            status_code=HTTP_202_ACCEPTED if started.created else HTTP_200_OK,
        )
