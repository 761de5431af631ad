"""OpenAPI examples of the live stream routes."""

from __future__ import annotations

PATH = "/api/v1/tenants/dev"
EXECUTION = "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"
EVENT_EXAMPLE = (
    "id: 4\n"
    'data: {"type":"Event","event":"TASK_STARTED","data":{"status":"running","attempt":1,"worker":"host-1"},'
    '"timestampMs":1767261600123,"executionId":"0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d","sequence":4,'
    '"stepId":"fetch","taskId":"0190f5d2-7c1f-7000-8000-000000000001","occurredAt":"2026-01-01T10:00:00.123Z"}\n\n'
    ": keep-alive\n\n"
)
