"""Documented responses with examples for the served OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from flowline_api.errors import PROBLEM_MEDIA_TYPE

# Every route of a tenant answers 404 for a tenant that does not exist.
NO_TENANT = "tenant 'acme' does not exist"


class SchemaError(msgspec.Struct):
    """One check a request body failed."""

    pointer: str
    message: str


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem.

    Validation problems add ``pointer`` (a JSON pointer into the request, or into the file of a pack folder
    named by ``file``); a body that breaks its schema adds ``errors``.
    """

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    pointer: str | None = None
    file: str | None = None
    errors: list[SchemaError] | None = None


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation failed",
    429: "Too many requests",
    503: "Service unavailable",
}
# Every tenant route needs credentials and a role, and is rate limited.
_EVERY_ROUTE = {
    401: "the credentials are invalid, revoked or expired",
    403: "this needs the operator role; the credentials have viewer",
    429: "the budget of 300 requests per 60 seconds is spent; try again in 42 seconds",
}


def example_response(container: Any, description: str, value: Any, status: int = 200) -> dict[int, ResponseSpec]:
    """The success response of a route, described, with one example."""
    return {
        status: ResponseSpec(
            data_container=container,
            description=description,
            generate_examples=False,
            examples=[Example(summary=description, value=value)],
        )
    }


def problems(instance: str, **details: str | tuple[str, str]) -> dict[int, ResponseSpec]:
    """Error responses of a route, 401, 403 and 429 included.

    ``problems(path, not_found="…", invalid=("…", "/pointer"))``: each detail is the example's, with its pointer.
    """
    statuses = {
        "bad_request": 400,
        "not_found": 404,
        "conflict": 409,
        "too_large": 413,
        "invalid": 422,
        "too_many": 429,
        "unavailable": 503,
    }
    examples: dict[int, tuple[str, str | None]] = {status: (detail, None) for status, detail in _EVERY_ROUTE.items()}
    for name, example in details.items():
        examples[statuses[name]] = example if isinstance(example, tuple) else (example, None)
    responses = {}
    for status, (detail, pointer) in examples.items():
        value: dict[str, Any] = {
            "type": "about:blank",
            "title": _TITLES[status],
            "status": status,
            "detail": detail,
            "instance": instance,
        }
        if pointer is not None:
            value["pointer"] = pointer
        responses[status] = ResponseSpec(
            data_container=Problem,
            description=_TITLES[status],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
            examples=[Example(summary=detail, value=value)],
        )
    return responses


def page_example(item: dict[str, Any]) -> dict[str, Any]:
    """An example page holding one item, with more to come."""
    return {"items": [item], "total": 41, "limit": 20, "offset": 0, "nextCursor": "WyJoZWxsbyIsIjAxOTMiXQ"}
