"""What wraps every request the api answers: its request id, and the access log line it leaves."""

from __future__ import annotations

import logging
import time
from typing import cast

from flowline.domain.credentials import Principal
from flowline.runtime.request_ids import HEADER, accepted_request_id, request_id_set
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

ACCESS_LOGGER = logging.getLogger("flowline_api.access")
# Probes and scrapes come every few seconds: at INFO they would drown the requests people make.
_PROBE_PATHS = frozenset({"/health", "/health/ready", "/metrics"})


class RequestIdMiddleware(ASGIMiddleware):
    """Every log line, outbox row and audit row of the request carries the id; the response header names it."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Run the request with its id current, and name it in the response."""
        sent = next((value.decode("latin-1") for name, value in scope["headers"] if name == HEADER.encode()), None)
        request_id = accepted_request_id(sent)

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)[HEADER] = request_id
            await send(message)

        with request_id_set(request_id):
            await next_app(scope, receive, send_with_request_id)


class AccessLogMiddleware(ASGIMiddleware):
    """One line per request once its answer is sent (a live stream: when it ends), at INFO; probes at DEBUG.

    The line's ``access`` extra holds the method, the route template (None for a path no route matches), the
    path, the status, the duration in milliseconds, the principal's subject (None without valid credentials)
    and the client address; the JSON log format writes them as fields of their own, beside the request id.
    """

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Answer the request, then log it."""
        method = cast("HTTPScope", scope)["method"]  # an HTTP scope: see ``scopes``
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before it does

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_recording_status)
        finally:
            level = logging.DEBUG if scope["path"] in _PROBE_PATHS else logging.INFO
            if ACCESS_LOGGER.isEnabledFor(level):
                duration_ms = round((time.perf_counter() - started) * 1000, 1)
                # Not request.user: a request no route matched, or one that skipped authentication, has none.
                principal = scope.get("user")
                client = scope.get("client")
                fields = {
                    "method": method,
                    "route": scope.get("path_template"),
                    "path": scope["path"],
                    "status": status,
                    "durationMs": duration_ms,
                    "principal": principal.subject if isinstance(principal, Principal) else None,
                    "clientAddress": client[0] if client else None,
                }
                message = "%s %s %d %.1f ms"
                ACCESS_LOGGER.log(level, message, method, scope["path"], status, duration_ms, extra={"access": fields})
