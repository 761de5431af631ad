"""Health, readiness and metrics endpoints for every service, and the runtime they share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import uvicorn
from litestar import Litestar, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from flowline.runtime.request_ids import current_request_id
from flowline.settings import env_name, parse_networks

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]


async def check_readiness(checks: Mapping[str, ReadinessCheck]) -> tuple[bool, dict[str, str]]:
    """Run every readiness check (each raises when its dependency is down) with a short timeout.

    The answer names only the kind of each error: its text (hosts, users, addresses) goes to the log, not to
    whoever asks, since the probe needs no credentials.
    """
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=2.0)
            results[name] = "ok"
        except Exception as err:
            logger.warning("readiness: %s is down: %s: %s", name, type(err).__name__, err)
            results[name] = f"down: {type(err).__name__}"
    return all(result == "ok" for result in results.values()), results


class CachedReadiness:
    """The outcome of the readiness checks, run at most once per ``seconds`` however often probes ask.

    Callers that ask while the checks run wait for that run instead of starting their own: a flood of probes
    costs the database and the broker nothing more.
    """

    def __init__(self, checks: Mapping[str, ReadinessCheck], seconds: float = 1.0) -> None:
        self._checks = checks
        self._seconds = seconds
        self._lock = asyncio.Lock()
        self._outcome: tuple[bool, dict[str, str]] | None = None
        self._checked_at = 0.0

    async def __call__(self) -> tuple[bool, dict[str, str]]:
        """Whether every dependency answers, and each check's result."""
        async with self._lock:
            if self._outcome is None or time.monotonic() - self._checked_at >= self._seconds:
                self._outcome = await check_readiness(self._checks)
                self._checked_at = time.monotonic()
            return self._outcome


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of ``/health``."""

    status: Literal["ok"]
    service: str


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of ``/health/ready``: each dependency's check, ``ok`` or ``down: <kind of error>``."""

    status: Literal["ok", "unavailable"]
    service: str
    checks: dict[str, str]


def ops_routes(
    service: str, checks: Mapping[str, ReadinessCheck], registry: CollectorRegistry
) -> list[HTTPRouteHandler]:
    """``/health`` (alive), ``/health/ready`` (dependencies answer) and ``/metrics`` for one service."""
    readiness = CachedReadiness(checks)

    @get("/health", sync_to_thread=False, tags=["ops"], summary="Liveness")
    def health() -> Health:
        """The process is up and serves requests."""
        return Health(status="ok", service=service)

    @get(
        "/health/ready",
        tags=["ops"],
        summary="Readiness",
        responses={503: ResponseSpec(Readiness, description="A dependency does not answer (see `checks`)")},
    )
    async def ready() -> Response[Readiness]:
        """Whether every dependency answers within 2 seconds (the api: the database and the broker).

        Checked at most once a second; each check says `ok` or `down: <kind of error>`.
        """
        ok, results = await readiness()
        return Response(
            Readiness(status="ok" if ok else "unavailable", service=service, checks=results),
            status_code=200 if ok else 503,
        )

    @get("/metrics", media_type=CONTENT_TYPE_LATEST, sync_to_thread=False, tags=["ops"], summary="Prometheus metrics")
    def metrics() -> bytes:
        """Every metric of the process in the Prometheus text format."""
        return generate_latest(registry)

    return [health, ready, metrics]


def create_ops_app(service: str, checks: Mapping[str, ReadinessCheck], registry: CollectorRegistry) -> Litestar:
    """The HTTP surface of a background service: just its ops routes."""
    return Litestar(route_handlers=ops_routes(service, checks, registry), openapi_config=None, logging_config=None)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server running inside a service's event loop; the service, not uvicorn, owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave signal handling to the service.

        uvicorn (0.54) has no setting for it: ``serve()`` installs its own SIGINT/SIGTERM handlers through this
        undocumented method, which is overridden to do nothing. tests/unit/shared/test_ops.py fails if an
        upgrade installs them some other way.
        """
        yield


def proxy_options(trusted_proxies: str) -> dict[str, Any]:
    """Options of uvicorn for ``FLOWLINE_TRUSTED_PROXIES``: whose ``X-Forwarded-For``/``-Proto`` to believe.

    The client address is the connection's unless the peer is one of the trusted proxies; with none, uvicorn
    reads no forwarding header at all (by default it would trust 127.0.0.1).

    Raises:
        ConfigurationError: an entry is not an IP address or CIDR.
    """
    proxies = [str(network) for network in parse_networks(trusted_proxies, env_name("trusted_proxies"))]
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies}


def http_server(app: Any, host: str, port: int, *, trusted_proxies: str = "") -> EmbeddedServer:
    """A server for ``app``; run ``await server.serve()``, stop with ``server.should_exit = True``."""
    # No log_config: uvicorn's loggers go through the service's own (JSON) handler.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="on",
        **proxy_options(trusted_proxies),
    )
    return EmbeddedServer(config)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, for a graceful shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the service, the current request id and any ``execution_id`` extra.

    The api's access log lines carry an ``access`` extra, a dict whose entries become fields of the line.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := current_request_id.get()) is not None:
            line["requestId"] = request_id
        if (execution_id := getattr(record, "execution_id", None)) is not None:
            line["executionId"] = execution_id
        if (access := getattr(record, "access", None)) is not None:
            line.update(access)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(service: str, level: str, log_format: str = "json") -> None:
    """One log format for every service: JSON lines (or text, for a person reading a terminal)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # aiokafka narrates every group join and partition assignment at INFO.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
