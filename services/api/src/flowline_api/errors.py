"""The one place where errors become RFC 9457 problem+json responses."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import asyncpg
from flowline.db.pool import ConnectionUnavailable
from flowline.errors import FlowlineError
from flowline.runtime.outages import OUTAGE_ERRORS
from litestar import Request, Response
from litestar.enums import ParamType
from litestar.exceptions import HTTPException, NotFoundException, TooManyRequestsException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from flowline_api.path_ids import MALFORMED_ID_IS_NOT_FOUND

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_INDEX = re.compile(r"\[(\d+)\]")


def problem(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """A problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": request.url.path}
    body.update(extra or {})
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _pointer(key: str) -> str:
    """``definition.steps[0].type`` → ``/definition/steps/0/type`` (JSON pointer).

    A value of an object is ``metadata[...]`` in msgspec's errors, which do not name its key: the object then.
    """
    key = key.replace("[...]", "")
    if key in ("", "data"):
        return ""
    return "/" + _INDEX.sub(r".\1", key).replace(".", "/")


def _flowline_error(request: Request[Any, Any, Any], exc: FlowlineError) -> Response[dict[str, Any]]:
    return problem(request, exc.status_code, exc.title, exc.detail, exc.extra, exc.headers or None)


def _parameter_name(request: Request[Any, Any, Any], key: Any) -> Any:
    """The name a client uses for a handler argument (``triggeredBy`` for ``triggered_by``), else ``key``."""
    try:
        definition = request.scope["route_handler"].parsed_fn_signature.parameters[key].kwarg_definition
    except (AttributeError, KeyError, TypeError):
        return key
    return getattr(definition, "name", None) or getattr(definition, "query", None) or key


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    """Malformed JSON or a bad path/query parameter is 400; a body that breaks its schema is 422.

    A malformed id in the path of a route opting for it (``path_ids.MALFORMED_ID_IS_NOT_FOUND``) is 404.
    """
    details = exc.extra if isinstance(exc.extra, list) else []
    malformed_path = any(isinstance(item, dict) and item.get("source") == ParamType.PATH for item in details)
    if malformed_path and request.route_handler.opt.get(MALFORMED_ID_IS_NOT_FOUND):
        return _http_error(request, NotFoundException())
    if malformed_path:  # the path names nothing: that comes before whatever is wrong with the body
        details = [item for item in details if isinstance(item, dict) and item.get("source") == ParamType.PATH]
    body_errors = [item for item in details if isinstance(item, dict) and item.get("source") == "body"]
    if not body_errors:
        parameters = "; ".join(
            f"{_parameter_name(request, item.get('key'))}: {item.get('message')}"
            for item in details
            if isinstance(item, dict)
        )
        return problem(request, 400, "Bad request", parameters or exc.detail)
    errors = [{"pointer": _pointer(str(item.get("key", ""))), "message": item.get("message")} for item in body_errors]
    first = errors[0]
    detail = f"{first['pointer'] or 'body'}: {first['message']}"
    return problem(request, 422, "Validation failed", detail, {"pointer": first["pointer"], "errors": errors})


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    """Litestar's own errors (credentials, roles, unknown routes and methods): the status names the problem."""
    title = HTTPStatus(exc.status_code).phrase.capitalize()
    extra = exc.extra if isinstance(exc.extra, dict) else None
    return problem(request, exc.status_code, title, exc.detail, extra, exc.headers)


def _rate_limited(request: Request[Any, Any, Any], exc: TooManyRequestsException) -> Response[dict[str, Any]]:
    """A spent budget: Litestar's rate limiter sends its RateLimit-* headers; Retry-After says when it renews."""
    headers = dict(exc.headers or {})
    if "RateLimit-Reset" not in headers:
        return _http_error(request, exc)
    headers["Retry-After"] = reset = headers["RateLimit-Reset"]
    window = headers.get("RateLimit-Policy", "").partition("w=")[2]
    detail = (
        f"the budget of {headers.get('RateLimit-Limit')} requests per {window} seconds is spent; "
        f"try again in {reset} seconds"
    )
    return problem(request, 429, "Too many requests", detail, headers=headers)


def _unstorable_value(request: Request[Any, Any, Any], exc: asyncpg.DataError) -> Response[dict[str, Any]]:
    return problem(
        request,
        400,
        "Bad request",
        f"the request holds a value that cannot be stored (such as the NUL character \\u0000): {exc}",
    )


def _dependency_down(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.warning("dependency unavailable on %s %s: %r", request.method, request.url.path, exc)
    return problem(
        request,
        503,
        "Service unavailable",
        "a dependency (database or broker) is unavailable; try again shortly",
        headers={"Retry-After": "1"},
    )


def _no_free_connection(request: Request[Any, Any, Any], exc: ConnectionUnavailable) -> Response[dict[str, Any]]:
    logger.warning("no free database connection on %s %s: %s", request.method, request.url.path, exc)
    return problem(
        request,
        503,
        "Service unavailable",
        f"no database connection of this api process was free within {exc.seconds:g} s; try again shortly",
        headers={"Retry-After": "1"},
    )


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(request, HTTP_500_INTERNAL_SERVER_ERROR, "Internal error", "an unexpected error occurred")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    FlowlineError: _flowline_error,
    ValidationException: _validation_error,
    TooManyRequestsException: _rate_limited,
    HTTPException: _http_error,
    asyncpg.DataError: _unstorable_value,
    **dict.fromkeys(OUTAGE_ERRORS, _dependency_down),
    ConnectionUnavailable: _no_free_connection,
    Exception: _unexpected_error,
}
