"""Request bodies of the workflow routes."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec
from flowline.domain.definitions import WorkflowDefinition
from flowline.errors import ClientError
from flowline_schemas.executions import MAX_IDEMPOTENCY_KEY_LENGTH, Metadata, Tag
from flowline_schemas.executions import Tags as ExecutionTags

from flowline_api.domain.merge_patch import MergePatch

REF_PATTERN = r"^[a-z][a-z0-9_-]{0,62}\.[a-z][a-z0-9_-]{0,126}$"
# Keys starting with "child:" or "kafka:" are the engine's own (child steps, keyless Kafka submissions).
IDEMPOTENCY_KEY_PATTERN = r"^(?!(child|kafka):)"
IdempotencyKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="the same key again returns the first execution; 'child:' and 'kafka:' prefixes are reserved",
    ),
]
WorkflowRef = Annotated[str, msgspec.Meta(pattern=REF_PATTERN, description="<pack>.<name>, lower case")]


Tags = Annotated[list[Tag], msgspec.Meta(max_length=50)]
Label = Annotated[str, msgspec.Meta(max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=10_000)]
JsonSchema = Annotated[dict[str, Any], msgspec.Meta(description="a JSON Schema (2020-12)")]
Retention = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[1-9][0-9]{0,5}[smhd]$",
        description="how long its executions are kept once their root finished: a positive whole number of s, m, "
        "h or d ('90s', '12h', '30d'); null: the server's FLOWLINE_EXECUTION_RETENTION",
        examples=["30d"],
    ),
]
Public = Annotated[
    bool, msgspec.Meta(description="every viewer and operator sees its executions, not only their starters")
]


class WorkflowState(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The whole state of a workflow, as it is defined (on create, or in a pack's workflow file)."""

    label: Label | None = None
    description: Description | None = None
    definition: WorkflowDefinition
    input_schema: JsonSchema | None = None
    output_schema: JsonSchema | None = None
    tags: Tags = []
    enabled: bool = True
    public: Public = False
    retention: Retention | None = None


class WorkflowCreate(WorkflowState, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A new workflow in an existing pack; its definition becomes version 1."""

    ref: WorkflowRef


class WorkflowUpdate(MergePatch, kw_only=True, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Changes to a workflow (PUT and PATCH): absent fields keep their value, null clears an optional one.

    A ``definition`` replaces the whole definition (it is validated as a unit). A change of ``definition``,
    ``inputSchema`` or ``outputSchema`` creates the next version; a change of only ``label``, ``description``,
    ``tags``, ``enabled``, ``public`` or ``retention`` keeps the version.
    """

    label: Label | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    definition: WorkflowDefinition | msgspec.UnsetType = msgspec.UNSET
    input_schema: JsonSchema | msgspec.UnsetType | None = msgspec.UNSET
    output_schema: JsonSchema | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    public: Public | msgspec.UnsetType = msgspec.UNSET
    retention: Retention | msgspec.UnsetType | None = msgspec.UNSET

    @classmethod
    def replacing(cls, state: WorkflowState) -> WorkflowUpdate:
        """The changes that make a workflow ``state`` (every field given)."""
        return cls(**{field: getattr(state, field) for field in cls.__struct_fields__})


class ExecuteRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Start an execution of a workflow."""

    input: dict[str, Any] = {}
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    idempotency_key: IdempotencyKey | None = None
    metadata: Metadata = {}
    tags: ExecutionTags = []


StartRequest = TypeVar("StartRequest", bound="ExecuteRequest")


def with_idempotency_header(request: StartRequest, header: str | None) -> StartRequest:
    """``request`` with the ``Idempotency-Key`` header as its key (the header and the field must agree).

    Raises:
        ClientError: a reserved prefix in the header, or a header and a field that differ.
    """
    if header is None:
        return request
    if not re.match(IDEMPOTENCY_KEY_PATTERN, header):
        raise ClientError("Idempotency-Key: keys starting with 'child:' or 'kafka:' are reserved")
    if request.idempotency_key not in (None, header):
        raise ClientError("the Idempotency-Key header and the idempotencyKey field differ")
    return msgspec.structs.replace(request, idempotency_key=header)
