"""Documented responses with examples for the served OpenAPI document."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from flowline_api.errors import problem_responses


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem.

    Validation problems add ``pointer`` (a JSON pointer into the request, or into the file of a pack folder
    named by ``file``).
    """

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    pointer: str | None = None
    file: str | None = None


_TITLES = {
    400: "Bad request",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation failed",
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
    """Error responses of a route: ``problems(path, not_found="…", invalid=("…", "/pointer"))``."""
    statuses = {"bad_request": 400, "not_found": 404, "conflict": 409, "too_large": 413, "invalid": 422}
    responses: dict[int, ResponseSpec] = problem_responses()  # 401, 403 and 429
    for name, example in details.items():
        status = statuses[name]
        detail, pointer = example if isinstance(example, tuple) else (example, None)
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
            media_type="application/problem+json",
            generate_examples=False,
            examples=[Example(summary=detail, value=value)],
        )
    return responses
