"""OpenAPI examples of the workflow routes."""

from __future__ import annotations

from typing import Any

PATH = "/api/v1/tenants/dev/workflows"
INVALID_DEFINITION = ("steps form a cycle: a → b → a", "/definition/steps")
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
DESCRIPTION_CLEARED_EXAMPLE: dict[str, Any] = {"description": None}
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
