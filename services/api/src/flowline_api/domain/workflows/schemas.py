"""Request bodies of the workflow routes, with the OpenAPI examples of their requests and answers."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec
from flowline.definitions import WorkflowDefinition
from flowline.errors import ClientError
from flowline_schemas.executions import Tag

from flowline_api.domain.merge_patch import MergePatch

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


Tags = Annotated[list[Tag], msgspec.Meta(max_length=50)]
Label = Annotated[str, msgspec.Meta(max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=10_000)]
JsonSchema = Annotated[dict[str, Any], msgspec.Meta(description="a JSON Schema (2020-12)")]
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


class WorkflowCreate(WorkflowState, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A new workflow in an existing pack; its definition becomes version 1."""

    ref: WorkflowRef


class WorkflowUpdate(MergePatch, kw_only=True, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Changes to a workflow (PUT and PATCH): absent fields keep their value, null clears an optional one.

    A ``definition`` replaces the whole definition (it is validated as a unit). A change of ``definition``,
    ``inputSchema`` or ``outputSchema`` creates the next version; a change of only ``label``, ``description``,
    ``tags``, ``enabled`` or ``public`` keeps the version.
    """

    label: Label | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    definition: WorkflowDefinition | msgspec.UnsetType = msgspec.UNSET
    input_schema: JsonSchema | msgspec.UnsetType | None = msgspec.UNSET
    output_schema: JsonSchema | msgspec.UnsetType | None = msgspec.UNSET
    tags: Tags | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    public: Public | msgspec.UnsetType = msgspec.UNSET

    @classmethod
    def replacing(cls, state: WorkflowState) -> WorkflowUpdate:
        """The changes that make a workflow ``state`` (every field given)."""
        return cls(**{field: getattr(state, field) for field in cls.__struct_fields__})


class ExecuteRequest(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Start an execution of a workflow."""

    input: dict[str, Any] = {}
    version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    idempotency_key: IdempotencyKey | None = None
    metadata: dict[str, str] = {}
    tags: list[str] = []


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


DEFINITION_EXAMPLE: dict[str, Any] = {
    "steps": [
        {"id": "greet", "type": "action", "action": "core.echo", "input": {"text": "hello {{ input.name }}"}},
        {
            "id": "shout",
            "type": "action",
            "action": "core.transform",
            "needs": ["greet"],
            "input": "{{ steps.greet.output.text | upper }}",
        },
    ],
    "output": {"message": "{{ steps.shout.output }}!"},
}
INPUT_SCHEMA_EXAMPLE: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}
WORKFLOW_STATE_EXAMPLE: dict[str, Any] = {
    "label": "Hello",
    "description": "Greets someone loudly",
    "definition": DEFINITION_EXAMPLE,
    "inputSchema": INPUT_SCHEMA_EXAMPLE,
    "tags": ["demo"],
    "enabled": True,
    "public": False,
}
WORKFLOW_CREATE_EXAMPLE: dict[str, Any] = {"ref": "demo.hello", **WORKFLOW_STATE_EXAMPLE}
WORKFLOW_METADATA_EXAMPLE: dict[str, Any] = {"label": "Hello again", "enabled": False}
WORKFLOW_SUMMARY_EXAMPLE: dict[str, Any] = {
    "ref": "demo.hello",
    "pack": "demo",
    "name": "hello",
    "label": "Hello",
    "description": "Greets someone loudly",
    "version": 2,
    "tags": ["demo"],
    "enabled": True,
    "public": False,
    "createdBy": None,
    "createdAt": "2026-11-22T07:00:00Z",
    "updatedAt": "2026-11-22T08:30:00Z",
}
WORKFLOW_EXAMPLE: dict[str, Any] = {
    **WORKFLOW_SUMMARY_EXAMPLE,
    "definition": DEFINITION_EXAMPLE,
    "inputSchema": INPUT_SCHEMA_EXAMPLE,
    "outputSchema": None,
}
VERSION_EXAMPLE: dict[str, Any] = {"version": 2, "createdBy": None, "createdAt": "2026-11-22T08:30:00Z"}
EXECUTE_EXAMPLE: dict[str, Any] = {"input": {"name": "Ada"}, "idempotencyKey": "order-42", "tags": ["demo"]}
EXECUTION_ACCEPTED_EXAMPLE: dict[str, Any] = {
    "executionId": "0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a",
    "status": "pending",
    "createdAt": "2026-11-22T08:31:00Z",
}


def page_example(item: dict[str, Any]) -> dict[str, Any]:
    """An example page holding one item, with more to come."""
    return {"items": [item], "total": 41, "limit": 20, "offset": 0, "nextCursor": "WyJoZWxsbyIsIjAxOTMiXQ"}
