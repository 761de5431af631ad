"""Routes of bulk operations: cancel, retry or delete many executions, and follow the operation's progress."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from flowline.db.audit import Actor
from flowline.domain.credentials import Principal
from flowline_schemas.bulk import BulkOperation
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from flowline_api.auth import OPERATOR, VIEWER
from flowline_api.domain.bulk.examples import (
    BOTH_GIVEN,
    BULK_CANCEL_EXAMPLE,
    BULK_DELETE_EXAMPLE,
    BULK_PATH,
    BULK_RETRY_EXAMPLE,
    COMPLETED_EXAMPLE,
    DRY_RUN_EXAMPLE,
    OPERATION_EXAMPLE,
    OPERATION_ID,
    UNKNOWN_EXECUTION,
)
from flowline_api.domain.bulk.schemas import BulkCancelRequest, BulkDeleteRequest, BulkRetryRequest
from flowline_api.domain.bulk.service import BulkOperationService, provide_bulk_operation_service
from flowline_api.domain.openapi import example_response, problems
from flowline_api.path_ids import OperationId


def _accepted(operation: BulkOperation) -> Response[BulkOperation]:
    """202 for an operation the scheduler will work through; 200 for a dry run, complete at once."""
    return Response(operation, status_code=HTTP_200_OK if operation.dry_run else HTTP_202_ACCEPTED)


def _created_responses(example: dict[str, Any], path: str) -> dict[int, ResponseSpec]:
    """A created operation (202), a dry run (200), and the problems of a bad selection."""
    return {
        **example_response(BulkOperation, "the operation, to be worked through", OPERATION_EXAMPLE, HTTP_202_ACCEPTED),
        **example_response(BulkOperation, "a dry run: the count, nothing changed", example),
        **problems(
            path,
            bad_request="status: 'done' is not one of cancelled, completed, failed, …",
            not_found=UNKNOWN_EXECUTION,
            invalid=BOTH_GIVEN,
        ),
    }


class BulkOperationController(Controller):
    """``/api/v1/tenants/{tenant}/executions/bulk/cancel|retry|delete`` and ``/bulk-operations/{id}``."""

    path = "/"
    tags = ["bulk operations"]
    dependencies = {"bulk_service": Provide(provide_bulk_operation_service, sync_to_thread=False)}

    @post(
        "/executions/bulk/cancel",
        opt=OPERATOR,
        status_code=HTTP_202_ACCEPTED,
        summary="Cancel many executions",
        responses=_created_responses({**DRY_RUN_EXAMPLE, "kind": "cancel"}, f"{BULK_PATH}/cancel"),
    )
    async def bulk_cancel(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        bulk_service: NamedDependency[BulkOperationService],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        data: Annotated[
            BulkCancelRequest,
            Body(examples=[Example(summary="running executions of one batch", value=BULK_CANCEL_EXAMPLE)]),
        ],
    ) -> Response[BulkOperation]:
        """Cancel `ids` (up to 1,000), or every execution matching `filter` (the filters of `GET /executions`).

        Answers 202 with the operation at once; the scheduler cancels the executions in the background, each
        exactly as `POST /executions/{id}/cancel` does, and `GET /bulk-operations/{id}` shows the progress.
        Finished executions are `skipped`. A filter selects the executions created before the operation, never
        ones started while it runs; it needs at least one condition. `dryRun` answers 200 with the number of
        selected executions as `total` and changes nothing. An unknown id is 404 and creates nothing.
        """
        return _accepted(await bulk_service.create(tenant_id, "cancel", data, caller, actor))

    @post(
        "/executions/bulk/retry",
        opt=OPERATOR,
        status_code=HTTP_202_ACCEPTED,
        summary="Retry many failed executions",
        responses=_created_responses(DRY_RUN_EXAMPLE, f"{BULK_PATH}/retry"),
    )
    async def bulk_retry(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        bulk_service: NamedDependency[BulkOperationService],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        data: Annotated[
            BulkRetryRequest,
            Body(examples=[Example(summary="a dry run over one execution", value=BULK_RETRY_EXAMPLE)]),
        ],
    ) -> Response[BulkOperation]:
        """Retry `ids` (up to 1,000), or every execution matching `filter` (the filters of `GET /executions`).

        Answers 202 with the operation at once; the scheduler retries the executions in the background, each
        exactly as `POST /executions/{id}/retry` does, and `GET /bulk-operations/{id}` shows the progress.
        Executions that have not failed are `skipped`. Selection and `dryRun` work as for the bulk cancel.
        """
        return _accepted(await bulk_service.create(tenant_id, "retry", data, caller, actor))

    @post(
        "/executions/bulk/delete",
        opt=OPERATOR,
        status_code=HTTP_202_ACCEPTED,
        summary="Delete many finished executions",
        responses=_created_responses({**DRY_RUN_EXAMPLE, "kind": "delete"}, f"{BULK_PATH}/delete"),
    )
    async def bulk_delete(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        bulk_service: NamedDependency[BulkOperationService],
        caller: NamedDependency[Principal],
        actor: NamedDependency[Actor],
        data: Annotated[
            BulkDeleteRequest,
            Body(examples=[Example(summary="failed executions of one workflow", value=BULK_DELETE_EXAMPLE)]),
        ],
    ) -> Response[BulkOperation]:
        """Delete `ids` (up to 1,000), or every execution matching `filter` (the filters of `GET /executions`).

        Answers 202 with the operation at once; the scheduler deletes the executions in the background, each
        exactly as `DELETE /executions/{id}` does: a finished root execution goes with everything under it.
        Executions that have not finished, children (they go with their root) and roots with a descendant
        still running are `skipped`. Selection and `dryRun` work as for the bulk cancel.
        """
        return _accepted(await bulk_service.create(tenant_id, "delete", data, caller, actor))

    @get(
        "/bulk-operations/{operation_id:str}",
        opt=VIEWER,
        summary="Read a bulk operation",
        responses={
            **example_response(BulkOperation, "a completed operation", COMPLETED_EXAMPLE),
            **problems(
                f"/api/v1/tenants/dev/bulk-operations/{OPERATION_ID}",
                bad_request="operation_id: Invalid UUID",
                not_found=f"bulk operation {OPERATION_ID} does not exist",
            ),
        },
    )
    async def get_operation(
        self,
        tenant_id: NamedDependency[uuid.UUID],
        bulk_service: NamedDependency[BulkOperationService],
        caller: NamedDependency[Principal],
        operation_id: OperationId,
    ) -> BulkOperation:
        """A bulk operation's status and counts: `total`, `succeeded`, `failed`, `skipped`, and the first errors.

        When it completes, an OPERATION_COMPLETED event with the operation's snapshot goes to the events topic.
        Only the principal that created the operation, or an admin, may read it: another's is 404, exactly like
        one that does not exist (or another tenant's).
        """
        return await bulk_service.read(tenant_id, operation_id, caller)
