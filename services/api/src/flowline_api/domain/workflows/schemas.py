"""Request and response bodies of the workflow routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from flowline.definitions import WorkflowDefinition

REF_PATTERN = r"^[a-z][a-z0-9_-]{0,62}\.[a-z][a-z0-9_-]{0,126}$"
# Keys starting with "child:" or "kafka:" are the engine's own (child steps, keyless Kafka submissions).
IDEMPOTENCY_KEY_PATTERN = r"^(?!(child|kafka):)"
IdempotencyKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="the same key again returns the first execution; 'child:' and 'kafka:' prefixes are reserved",
    ),
]
WorkflowRef = Annotated[str, msgspec.Meta(pattern=REF_PATTERN, description="<pack>.<name>, lower case")]


class WorkflowCreate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A new workflow; its definition becomes version 1."""

    ref: WorkflowRef
    label: str | None = None
    description: str | None = None
    definition: WorkflowDefinition
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    tags: list[str] = []
    enabled: bool = True


class Workflow(msgspec.Struct, kw_only=True, rename="camel"):
    """A workflow with one of its versions."""

    ref: str
    pack: str
    name: str
    label: str | None
    description: str | None
    version: int
    definition: dict[str, Any]
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    tags: list[str]
    enabled: bool
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class ExecuteRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Start an execution of a workflow."""

    input: dict[str, Any] = {}
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    idempotency_key: IdempotencyKey | None = None
    metadata: dict[str, str] = {}
    tags: list[str] = []


class ExecutionAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a start request: the execution runs asynchronously."""

    execution_id: str
    status: str
    created_at: datetime
