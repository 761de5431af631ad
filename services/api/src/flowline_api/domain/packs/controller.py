"""Routes of packs: the namespaces of workflows, and installing a pack folder."""

from __future__ import annotations

import uuid
from typing import Annotated

from flowline.db.audit import Actor
from flowline.db.workflows import WorkflowFilters
from flowline_schemas.packs import Pack, PackInstalled
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.domain.openapi import NO_TENANT, example_response, page_example, problems
from flowline_api.domain.packs.examples import (
    PACK_CREATE_EXAMPLE,
    PACK_EXAMPLE,
    PACK_INSTALL_EXAMPLE,
    PACK_INSTALLED_EXAMPLE,
    PATH,
)
from flowline_api.domain.packs.schemas import PackCreate, PackInstall
from flowline_api.domain.packs.service import PackService, provide_pack_service
from flowline_api.domain.workflows.controller import (
    EnabledFilter,
    Order,
    SearchFilter,
    Sort,
    TagsFilter,
    split_tags,
)
from flowline_api.domain.workflows.examples import WORKFLOW_SUMMARY_EXAMPLE
from flowline_api.domain.workflows.service import WorkflowService, provide_workflow_service
from flowline_api.pagination import Cursor, Limit, Offset, PackPage, WorkflowSummaryPage


class PackController(Controller):
    """``/api/v1/tenants/{tenant}/packs``."""

    path = "/packs"
    tags = ["packs"]
    dependencies = {
        "workflow_service": Provide(provide_workflow_service, sync_to_thread=False),
        "pack_service": Provide(provide_pack_service, sync_to_thread=False),
    }

    @post(
        "/",
        opt=OPERATOR,
        status_code=HTTP_201_CREATED,
        summary="Create a pack",
        responses={
            **example_response(Pack, "the pack", PACK_EXAMPLE, HTTP_201_CREATED),
            **problems(
                PATH,
                not_found=NO_TENANT,
                conflict="pack 'demo' already exists",
                invalid=("/ref: Expected `str` matching regex '^[a-z][a-z0-9_-]{0,62}$'", "/ref"),
            ),
        },
    )
    async def create_pack(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        pack_service: NamedDependency[PackService],
        actor: NamedDependency[Actor],
        data: Annotated[PackCreate, Body(examples=[Example(summary="a pack", value=PACK_CREATE_EXAMPLE)])],
    ) -> Pack:
        """Create a pack: workflows `<pack>.<name>` can then be defined in it."""
        return await pack_service.create(tenant_id, data, actor)

    @get(
        "/",
        opt=VIEWER,
        summary="List packs",
        responses={
            **example_response(PackPage, "a page of packs by ref", page_example(PACK_EXAMPLE)),
            **problems(PATH, not_found=NO_TENANT),
        },
    )
    async def list_packs(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        pack_service: NamedDependency[PackService],
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> PackPage:
        """Live packs sorted by ref; pass `nextCursor` back as `cursor` for the next page."""
        return await pack_service.list(tenant_id, limit=limit, offset=offset, cursor=cursor)

    @get(
        "/{pack:str}",
        opt=VIEWER,
        summary="Read a pack",
        responses={
            **example_response(Pack, "the pack", PACK_EXAMPLE),
            **problems(f"{PATH}/demo", not_found="pack 'demo' does not exist"),
        },
    )
    async def get_pack(
        self, tenant_id: NamedDependency[uuid.UUID], pack_service: NamedDependency[PackService], pack: FromPath[str]
    ) -> Pack:
        """A pack's ref, label, description and version."""
        return await pack_service.read(tenant_id, pack)

    @delete(
        "/{pack:str}",
        opt=OPERATOR,
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a pack",
        responses=problems(
            f"{PATH}/demo",
            not_found="pack 'demo' does not exist",
            conflict="pack 'demo' holds 3 workflow(s); delete them first or pass cascade=true",
        ),
    )
    async def delete_pack(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        pack_service: NamedDependency[PackService],
        actor: NamedDependency[Actor],
        pack: FromPath[str],
        cascade: Annotated[
            bool, QueryParameter(description="also soft-delete the pack's workflows (else 409 while it holds any)")
        ] = False,
    ) -> None:
        """Soft-delete a pack; 409 while it holds workflows unless `cascade=true`, which deletes them too."""
        await pack_service.delete(tenant_id, pack, cascade=cascade, actor=actor)

    @get(
        "/{pack:str}/workflows",
        opt=VIEWER,
        summary="List the workflows of a pack",
        responses={
            **example_response(
                WorkflowSummaryPage, "a page of the pack's workflows", page_example(WORKFLOW_SUMMARY_EXAMPLE)
            ),
            **problems(f"{PATH}/demo/workflows", not_found="pack 'demo' does not exist"),
        },
    )
    async def list_pack_workflows(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        workflow_service: NamedDependency[WorkflowService],
        pack: FromPath[str],
        tags: TagsFilter = None,
        enabled: EnabledFilter = None,
        search: SearchFilter = None,
        sort: Sort = "createdAt",
        order: Order = None,
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Cursor = None,
    ) -> WorkflowSummaryPage:
        """The pack's live workflows, with the filters, sorts and pages of `GET /workflows`."""
        await workflow_service.read_pack_id(tenant_id, pack)
        filters = WorkflowFilters(tags=split_tags(tags), enabled=enabled, search=search or None, pack=pack)
        return await workflow_service.list(
            tenant_id, filters, sort=sort, order=order, limit=limit, offset=offset, cursor=cursor
        )


class PackInstallController(Controller):
    """``POST /api/v1/tenants/{tenant}/packs/install``: apart, because a folder may exceed the api's body limit.

    ``create_app`` mounts it with ``FLOWLINE_MAX_PACK_INSTALL_BYTES`` as its body limit.
    """

    path = PackController.path
    tags = PackController.tags
    dependencies = PackController.dependencies

    @post(
        "/install",
        opt=OPERATOR,
        status_code=HTTP_200_OK,
        summary="Install a pack folder",
        responses={
            **example_response(PackInstalled, "what the install changed", PACK_INSTALLED_EXAMPLE),
            **problems(
                f"{PATH}/install",
                not_found=NO_TENANT,
                invalid=(
                    "workflows/hello.yaml: step 'shout' needs unknown step 'gret'",
                    "/definition/steps/1/needs/0",
                ),
                too_large="workflows/big.yaml: the definition is 1200000 bytes; the limit is 1000000",
            ),
        },
    )
    async def install_pack(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        pack_service: NamedDependency[PackService],
        actor: NamedDependency[Actor],
        data: Annotated[
            PackInstall, Body(examples=[Example(summary="pack.yaml and one workflow", value=PACK_INSTALL_EXAMPLE)])
        ],
    ) -> PackInstalled:
        """Create or update a pack and its workflows from its folder's files, in one transaction.

        `files` maps paths to contents: `pack.yaml` (ref, label, description, version) and
        `workflows/<name>.yaml`, each a workflow body as for `POST /workflows` without `ref` (the name defaults
        to the file's). A workflow whose definition or schemas changed gets a new version. One bad file changes
        nothing: the 422 names the file (`file`) and the JSON pointer inside it (`pointer`). Workflows of the
        pack that are not in the folder are left as they are.
        """
        return await pack_service.install(tenant_id, data.files, actor)
