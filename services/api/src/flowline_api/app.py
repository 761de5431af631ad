"""The api application: ``create_app(settings)`` wires routes, resources and error handling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
from flowline.domain.actions import load_actions
from flowline.domain.agents import auth_cipher
from flowline.domain.starting import ExecutionInserts, WorkflowCache
from flowline.runtime.ops import ops_routes
from flowline.runtime.outbound import OutboundPolicy, guarded_client
from flowline.runtime.service import OutboxRelay, Runtime, freeze_startup_heap
from flowline.settings import Settings
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.middleware import DefineMiddleware
from prometheus_client import CollectorRegistry

from flowline_api.auth import ApiKeyCache, BearerAuthentication, JwtVerifier, require_role, require_visible
from flowline_api.console.app import console_page_or, console_router, template_config
from flowline_api.console.version_steps import VersionStepsCache
from flowline_api.dependencies import (
    provide_actor,
    provide_caller,
    provide_outbox,
    provide_pool,
    provide_settings,
    provide_tenant_id,
)
from flowline_api.docs import docs_assets, openapi_config, redoc
from flowline_api.domain.agents.controller import AgentController
from flowline_api.domain.api_keys.controller import ApiKeyController
from flowline_api.domain.audit.controller import AuditLogController
from flowline_api.domain.bulk.controller import BulkOperationController
from flowline_api.domain.control.controller import ExecutionControlController
from flowline_api.domain.executions.controller import ExecutionController
from flowline_api.domain.logs.controller import LogController
from flowline_api.domain.packs.controller import PackController, PackInstallController
from flowline_api.domain.schedules.controller import ScheduleController
from flowline_api.domain.streams.controller import StreamController
from flowline_api.domain.streams.hub import StreamHub
from flowline_api.domain.streams.service import StreamTimings
from flowline_api.domain.tasks.controller import TaskController
from flowline_api.domain.tenants.controller import TenantRetentionController
from flowline_api.domain.webhooks.controller import WebhookController
from flowline_api.domain.workflows.controller import WorkflowController
from flowline_api.errors import EXCEPTION_HANDLERS
from flowline_api.limits import JsonLimitsMiddleware
from flowline_api.metrics import ApiMetrics
from flowline_api.middleware import AccessLogMiddleware, RequestIdMiddleware
from flowline_api.rate_limits import RATE_LIMIT_STORE, ExpiredBudgetCleanup, rate_limit_middleware, rate_limit_store

TENANT_PATH = "/api/v1/tenants/{tenant:str}"


def _app_state(settings: Settings, outbound: OutboundPolicy) -> State:
    """The app's state before its lifespan opens the connections: settings, caches, ciphers and verifiers."""
    return State(
        {
            "settings": settings,
            "auth_cipher": auth_cipher(settings.secret_key),
            "outbound": outbound,
            "known_actions": frozenset(load_actions()),
            "tenant_ids": {},
            "jwt_verifier": JwtVerifier(settings),
            "api_keys": ApiKeyCache(settings.api_key_cache_seconds),
            "started_workflows": WorkflowCache(),
            "version_steps": VersionStepsCache(),
            "stream_timings": StreamTimings(settings.stream_keepalive_seconds, settings.stream_idle_timeout_seconds),
        }
    )


def _lifespan(
    settings: Settings, registry: CollectorRegistry, state: State, outbound: OutboundPolicy
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The app's lifespan: it opens the connections, the outbox relay and the live streams, and closes them."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings, registry, acquire_timeout=settings.db_acquire_timeout_seconds)
        state.runtime, state.pool, state.outbox = runtime, runtime.pool, runtime.outbox
        state.execution_inserts = ExecutionInserts(runtime.pool)  # concurrent starts share statements
        relay = OutboxRelay(
            runtime.outbox, settings.outbox_relay_interval_seconds, settings.outbox_relay_fallback_seconds
        )
        relay_task = asyncio.create_task(relay.start())
        # One pooled client for every outgoing request (agent health checks): it connects only where the
        # outbound policy allows and follows no redirects.
        state.http = guarded_client(outbound, limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))
        # Live streams: this process follows the events and logs topics for its own subscribers, while it has any.
        state.stream_hub = hub = StreamHub(settings)
        hub.start()
        budgets = rate_limit_store(settings, runtime.pool)
        app.stores.register(RATE_LIMIT_STORE, budgets, allow_override=True)  # a lifespan run again has a new pool
        cleanup = ExpiredBudgetCleanup(budgets)
        cleanup_task = asyncio.create_task(cleanup.start())
        freeze_startup_heap()
        try:
            yield
        finally:
            relay.stop()
            cleanup.stop()
            await hub.stop()
            await asyncio.gather(relay_task, cleanup_task, return_exceptions=True)
            await state.http.aclose()
            await runtime.close()

    return lifespan


def _tenant_routes(settings: Settings, rate_limits: list[DefineMiddleware]) -> Router:
    """Every tenant route, under the tenant's path."""
    # Every tenant route lives under the tenant's path, needs credentials and declares the role it needs, and is
    # rate limited (see rate_limits: the limiters sit between authentication and the role guard); health, metrics
    # and the docs (pages and their scripts) are not.
    return Router(
        path=TENANT_PATH,
        route_handlers=[
            WorkflowController,
            PackController,
            Router("/", route_handlers=[PackInstallController], request_max_body_size=settings.max_pack_install_bytes),
            ExecutionController,
            TaskController,
            ExecutionControlController,
            BulkOperationController,
            ScheduleController,
            AgentController,
            WebhookController,
            AuditLogController,
            ApiKeyController,
            TenantRetentionController,
            LogController,
            StreamController,
        ],
        dependencies={
            "tenant_id": Provide(provide_tenant_id),
            "caller": Provide(provide_caller, sync_to_thread=False),
            "actor": Provide(provide_actor, sync_to_thread=False),
        },
        middleware=[DefineMiddleware(BearerAuthentication), *rate_limits],
        guards=[require_role, require_visible],
        security=[{"bearer": []}],
    )


def create_app(settings: Settings) -> Litestar:
    """The api for ``settings``; the database and broker connections open in the app's lifespan.

    Raises:
        ConfigurationError: FLOWLINE_SECRET_KEY is missing or invalid (agent credentials are never stored
            unencrypted), or FLOWLINE_OUTBOUND_ALLOWED_NETWORKS holds something that is not a network.
    """
    outbound = OutboundPolicy.from_setting(settings.outbound_allowed_networks)
    rate_limits = rate_limit_middleware(settings)
    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    state = _app_state(settings, outbound)

    async def check_database() -> None:
        await state.runtime.check_database()

    async def check_kafka() -> None:
        await state.runtime.check_kafka()

    lifespan = _lifespan(settings, registry, state, outbound)

    tenant_routes = _tenant_routes(settings, rate_limits)
    app = Litestar(
        route_handlers=[
            tenant_routes,
            *ops_routes("api", {"database": check_database, "kafka": check_kafka}, registry),
            redoc,
            docs_assets,
            console_router(settings),
        ],
        dependencies={
            "pool": Provide(provide_pool, sync_to_thread=False),
            "outbox": Provide(provide_outbox, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        lifespan=[lifespan],
        middleware=[metrics.middleware(), JsonLimitsMiddleware(settings)],
        request_max_body_size=settings.max_request_body_bytes,
        exception_handlers={
            **EXCEPTION_HANDLERS,
            NotFoundException: console_page_or(EXCEPTION_HANDLERS[HTTPException]),
            MethodNotAllowedException: console_page_or(EXCEPTION_HANDLERS[HTTPException]),
        },
        logging_config=None,
        state=state,
        openapi_config=openapi_config(),
        template_config=template_config(),
    )
    # The request id and the access log wrap the whole application, outside the exception handling that turns
    # what middleware raise into responses: middleware given to Litestar run only for a route that matched, and
    # never see the answer to what they or the middleware inside them raise (a rate limit's 429).
    handler = AccessLogMiddleware()(app.asgi_handler) if settings.access_log else app.asgi_handler
    app.asgi_handler = RequestIdMiddleware()(handler)
    return app
