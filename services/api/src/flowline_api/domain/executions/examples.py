"""OpenAPI examples of the execution and task routes."""

from __future__ import annotations

from typing import Any

EXECUTION_ID = "0193a5a0-7c1e-7000-8000-4b2f0e1d2c3a"
TASK_ID = "0193a5a0-7c2f-7000-8000-5c3f1e2d3c4b"
PATH = "/api/v1/tenants/dev/executions"
NOT_FOUND = f"execution {EXECUTION_ID} does not exist"
BAD_ID = "execution_id: Invalid UUID"

EXECUTION_CREATE_EXAMPLE: dict[str, Any] = {
    "workflow": "demo.hello",
    "input": {"name": "Ada"},
    "idempotencyKey": "order-42",
    "metadata": {"customer": "c-42"},
    "tags": ["demo"],
}
STEP_EXAMPLE: dict[str, Any] = {
    "taskId": TASK_ID,
    "executionId": EXECUTION_ID,
    "stepId": "greet",
    "type": "action",
    "status": "completed",
    "generation": 0,
    "attempts": 1,
    "input": {"text": "hello Ada"},
    "output": {"text": "hello Ada"},
    "error": None,
    "createdAt": "2026-11-22T08:31:00.010Z",
    "scheduledAt": "2026-11-22T08:31:00.012Z",
    "startedAt": "2026-11-22T08:31:00.013Z",
    "completedAt": "2026-11-22T08:31:00.020Z",
    "durationMs": 7,
}
TASK_EXAMPLE: dict[str, Any] = {**STEP_EXAMPLE, "workflowRef": "demo.hello"}
SUMMARY_EXAMPLE: dict[str, Any] = {
    "id": EXECUTION_ID,
    "workflowRef": "demo.hello",
    "workflowVersion": 2,
    "status": "completed",
    "error": None,
    "triggeredBy": "api",
    "startedBy": "api-key:0193a5a0-6c00-7000-8000-1a2b3c4d5e6f",
    "parentExecutionId": None,
    "parentStepId": None,
    "rootExecutionId": EXECUTION_ID,
    "idempotencyKey": "order-42",
    "metadata": {"customer": "c-42"},
    "tags": ["demo"],
    "createdAt": "2026-11-22T08:31:00Z",
    "startedAt": "2026-11-22T08:31:00.005Z",
    "completedAt": "2026-11-22T08:31:00.040Z",
    "cancelledAt": None,
    "cancelledBy": None,
    "durationMs": 35,
}
EXECUTION_EXAMPLE: dict[str, Any] = {
    **SUMMARY_EXAMPLE,
    "input": {"name": "Ada"},
    "output": {"message": "HELLO ADA!"},
    "stepCounts": {
        "pending": 0,
        "scheduled": 0,
        "running": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "skipped": 0,
    },
    "steps": [STEP_EXAMPLE],
}
PAGE_EXAMPLE: dict[str, Any] = {
    "items": [SUMMARY_EXAMPLE],
    "total": 1342,
    "totalExact": True,
    "limit": 20,
    "offset": 0,
    "nextCursor": "WyJjcmVhdGVkQXQiLCJkZXNjIiwiMjAyNi0xMS0yMlQwODozMTowMFoiLCIwMTkzIl0",
}
EVENTS_EXAMPLE: dict[str, Any] = {
    "events": [
        {
            "sequence": 1,
            "event": "WORKFLOW_CREATED",
            "stepId": None,
            "taskId": None,
            "data": {"status": "pending", "workflowRef": "demo.hello", "workflowVersion": 2},
            "occurredAt": "2026-11-22T08:31:00Z",
        },
        {
            "sequence": 2,
            "event": "WORKFLOW_STARTED",
            "stepId": None,
            "taskId": None,
            "data": {"status": "running", "workflowRef": "demo.hello", "workflowVersion": 2},
            "occurredAt": "2026-11-22T08:31:00.005Z",
        },
    ],
    "nextSequence": 2,
    "hasMore": True,
}
CHILDREN_EXAMPLE: dict[str, Any] = {
    "children": [
        {
            "childWorkflowExecutionId": "0193a5a0-7d00-7000-8000-6d4f2e3d4c5b",
            "kind": "shipping.dispatch",
            "parentStepId": "ship",
            "status": "running",
            "createdAt": "2026-11-22T08:31:01Z",
            "completedAt": None,
        }
    ]
}
ATTEMPTS_EXAMPLE: dict[str, Any] = {
    "attempts": [
        {
            "attempt": 1,
            "generation": 0,
            "status": "failed",
            "startedAt": "2026-11-22T08:31:00.013Z",
            "finishedAt": "2026-11-22T08:31:00.513Z",
            "durationMs": 500,
            "workerId": "executor-1:4242",
            "error": {"type": "HttpStatus", "message": "503 Service Unavailable"},
        },
        {
            "attempt": 2,
            "generation": 0,
            "status": "completed",
            "startedAt": "2026-11-22T08:31:01.520Z",
            "finishedAt": "2026-11-22T08:31:01.610Z",
            "durationMs": 90,
            "workerId": "executor-1:4242",
            "error": None,
        },
    ]
}
PROMISE_RESOLVED_EXAMPLE: dict[str, Any] = {
    "executionId": EXECUTION_ID,
    "promise": "manager-approval",
    "status": "resolved",
    "settledAt": "2026-11-22T08:40:00Z",
}
PROMISE_REJECTED_EXAMPLE: dict[str, Any] = {**PROMISE_RESOLVED_EXAMPLE, "status": "rejected"}
