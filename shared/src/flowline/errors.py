"""The one error hierarchy: services raise these, the api maps them to problem+json in one place."""

from __future__ import annotations

from typing import Any


class FlowlineError(Exception):
    """Base of every error Flowline raises on purpose."""

    status_code = 500
    title = "Internal error"

    def __init__(
        self, detail: str, *, extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}  # of the api's answer (Retry-After…)


class ClientError(FlowlineError):
    """The caller asked for something that cannot be done as asked."""

    status_code = 400
    title = "Bad request"


class NotFound(ClientError):
    """The resource does not exist (or belongs to another tenant)."""

    status_code = 404
    title = "Not found"


class Conflict(ClientError):
    """The request conflicts with the current state (duplicate, illegal transition, disabled)."""

    status_code = 409
    title = "Conflict"


class ValidationFailed(ClientError):
    """The request is well-formed but its content is invalid."""

    status_code = 422
    title = "Validation failed"

    def __init__(self, detail: str, *, pointer: str | None = None, extra: dict[str, Any] | None = None) -> None:
        merged = dict(extra or {})
        if pointer is not None:
            merged["pointer"] = pointer
        super().__init__(detail, extra=merged)
        self.pointer = pointer


class TooLarge(ClientError):
    """The request exceeds a size limit."""

    status_code = 413
    title = "Payload too large"


class TooManyRequests(ClientError):
    """The caller holds as much of a bounded resource as one caller may; it may ask again once it let some go."""

    status_code = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class Unavailable(FlowlineError):
    """This process has no room for the request now (its share of a bounded resource is taken); try again."""

    status_code = 503
    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})
