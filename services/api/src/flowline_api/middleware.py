"""The api's request id: taken from ``X-Request-ID`` or made, current while the request runs, sent back."""

from __future__ import annotations

from flowline.request_ids import HEADER, accepted_request_id, request_id_set
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send


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
