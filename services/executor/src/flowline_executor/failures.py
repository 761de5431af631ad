"""The error objects that steps, attempts and executions store: a message and whatever else explains it."""

from __future__ import annotations

from typing import Any


def failure(message: str, **extra: Any) -> dict[str, Any]:
    """An error object: ``message`` with ``extra`` fields (``type``, ``retryable``, ``stepId``…)."""
    return {"message": message, **extra}
