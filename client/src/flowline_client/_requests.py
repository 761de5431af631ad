"""The query strings and bodies of the client's requests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from flowline_client.models import ExecutionFilter

ParamValue = str | int | bool | datetime | Sequence[str] | None


def query(params: Mapping[str, ParamValue]) -> list[tuple[str, str | int | float | bool | None]]:
    """Query pairs without the unset values; a sequence repeats its parameter, as the api expects."""
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, datetime):
            pairs.append((name, value.isoformat()))
        elif isinstance(value, str | int):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, item) for item in value)
    return pairs


def execution_body(
    input: Mapping[str, Any] | None,
    version: int | None,
    idempotency_key: str | None,
    metadata: Mapping[str, str] | None,
    tags: Sequence[str] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": dict(input or {}), "metadata": dict(metadata or {}), "tags": list(tags or [])}
    if version is not None:
        body["version"] = version
    if idempotency_key is not None:
        body["idempotencyKey"] = idempotency_key
    return body


def filter_body(selection: ExecutionFilter | None) -> dict[str, Any] | None:
    """The filters given, as the request body names them (the ones not given left out)."""
    return None if selection is None else without_none(msgspec.to_builtins(selection))


def without_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if value is not None}
