"""The operator console at ``/ui``: its routes, templates, vendored scripts, sign-in, CSRF, compression and headers.

Pages are rendered on the server (Jinja); htmx and its SSE extension patch the execution page from the
execution's stream. Every page goes through the API's guards (``require_role``, ``require_visible``) and calls
the API's domain services in this process, so roles, ownership and tenants hold exactly as in the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from flowline.errors import FlowlineError
from flowline.settings import Settings
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, Router, get
from litestar.config.compression import CompressionConfig
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.middleware import DefineMiddleware
from litestar.middleware.compression import CompressionMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types import ExceptionHandler

from flowline_api.auth import require_role, require_visible
from flowline_api.console.actions import ConsoleActionController
from flowline_api.console.admin import ConsoleAdminController
from flowline_api.console.bulk import ConsoleBulkController
from flowline_api.console.executions import ConsoleExecutionController, provide_page_reads
from flowline_api.console.graph import format_duration
from flowline_api.console.live import ConsoleLiveController
from flowline_api.console.login import ConsoleLoginController
from flowline_api.console.rows import ConsoleRowsController
from flowline_api.console.schedules import ConsoleScheduleController
from flowline_api.console.session import (
    PATH,
    SECURITY_HEADERS,
    ConsoleAuthentication,
    ConsoleCSRFMiddleware,
    problem_page,
    provide_console_tenant_id,
    to_sign_in,
)
from flowline_api.console.views import UNCOMPRESSED, marked, utc_time
from flowline_api.console.webhooks import ConsoleWebhookController
from flowline_api.console.workflows import ConsoleWorkflowController
from flowline_api.dependencies import provide_actor, provide_caller
from flowline_api.domain.agents.service import provide_agent_service
from flowline_api.domain.audit.service import provide_audit_service
from flowline_api.domain.bulk.service import provide_bulk_operation_service
from flowline_api.domain.control.service import provide_control_service
from flowline_api.domain.executions.service import provide_execution_service
from flowline_api.domain.logs.service import provide_log_service
from flowline_api.domain.streams.service import provide_stream_service
from flowline_api.domain.workflows.service import provide_workflow_service
from flowline_api.rate_limits import rate_limit_middleware

HERE: Final = Path(__file__).parent
VENDORED_MAX_AGE: Final = 365 * 24 * 3600
# Pages and static files, gzip'd for a browser that accepts it; event streams are left alone (views.STREAM).
COMPRESSION: Final = CompressionConfig(backend="gzip", gzip_compress_level=6, exclude_opt_key=UNCOMPRESSED)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The console's Jinja templates (escaped by default), with its few filters."""
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True), auto_reload=False
    )
    environment.filters["duration"] = format_duration
    environment.filters["utc"] = utc_time
    environment.filters["marked"] = marked
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


@get("/", include_in_schema=False, sync_to_thread=False, name="console:home")
def home() -> Redirect:
    """The console opens on the executions list."""
    return Redirect(f"{PATH}/executions")


def vendored_static_routers() -> list[Router]:
    """One static router per vendored library: its folder is named for its version, so its files never change.

    They are cached for a year without asking again; a new version comes in a new folder, under a new URL.
    """
    return [
        create_static_files_router(
            f"/static/{folder.name}",
            directories=[folder],
            name=f"console_static_{folder.name}",
            cache_control=CacheControlHeader(max_age=VENDORED_MAX_AGE, public=True, immutable=True),
            include_in_schema=False,
        )
        for folder in sorted((HERE / "static").iterdir())
        if folder.is_dir()
    ]


def console_page_or(api_handler: ExceptionHandler[Any]) -> ExceptionHandler[Any]:
    """An app handler of routing errors: the console's problem page under ``/ui``, else ``api_handler``'s answer.

    The console router's own handlers answer what its routes raise; a path that matches no route (404), or a
    route that takes no such method (405), never reaches them, so the app's handler asks this first.
    """

    def page_or_problem(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
        if request.url.path != PATH and not request.url.path.startswith(PATH + "/"):
            return api_handler(request, error)
        page = problem_page(request, error)
        page.headers.update({header.name: str(header.value) for header in SECURITY_HEADERS})
        return page

    return page_or_problem


def console_router(settings: Settings) -> Router:
    """Every ``/ui`` route: the static files (no sign-in) and the pages (signed in, CSRF-checked, rate limited).

    Raises:
        ConfigurationError: a rate limit setting is not ``<requests>/<period>``.
    """
    static = create_static_files_router(
        "/static",
        directories=[HERE / "static"],
        name="console_static",
        cache_control=CacheControlHeader(max_age=3600, public=True),  # console.css may change with a release
        include_in_schema=False,
    )
    pages = Router(
        "/",
        route_handlers=[
            home,
            ConsoleExecutionController,
            ConsoleActionController,
            ConsoleLiveController,
            ConsoleWorkflowController,
            ConsoleAdminController,
            ConsoleBulkController,
            ConsoleRowsController,
            ConsoleScheduleController,
            ConsoleWebhookController,
        ],
        guards=[require_role, require_visible],
        response_headers=SECURITY_HEADERS,
        dependencies={
            "tenant_id": Provide(provide_console_tenant_id),
            "caller": Provide(provide_caller, sync_to_thread=False),
            "actor": Provide(provide_actor, sync_to_thread=False),
            "execution_service": Provide(provide_execution_service, sync_to_thread=False),
            "workflow_service": Provide(provide_workflow_service, sync_to_thread=False),
            "log_service": Provide(provide_log_service, sync_to_thread=False),
            "control_service": Provide(provide_control_service, sync_to_thread=False),
            "stream_service": Provide(provide_stream_service, sync_to_thread=False),
            "agent_service": Provide(provide_agent_service, sync_to_thread=False),
            "audit_service": Provide(provide_audit_service, sync_to_thread=False),
            "bulk_operation_service": Provide(provide_bulk_operation_service, sync_to_thread=False),
            "page_reads": Provide(provide_page_reads, sync_to_thread=False),
        },
    )
    return Router(
        PATH,
        route_handlers=[static, *vendored_static_routers(), ConsoleLoginController, pages],
        middleware=[
            DefineMiddleware(CompressionMiddleware, config=COMPRESSION),
            DefineMiddleware(ConsoleCSRFMiddleware, settings=settings),
            DefineMiddleware(ConsoleAuthentication),
            *rate_limit_middleware(settings),  # the API's budgets, per principal: the console spends the same
        ],
        exception_handlers={
            NotAuthorizedException: to_sign_in,
            PermissionDeniedException: problem_page,
            TooManyRequestsException: problem_page,
            NotFoundException: problem_page,
            ValidationException: problem_page,
            FlowlineError: problem_page,
            Exception: problem_page,
        },
        include_in_schema=False,
    )
