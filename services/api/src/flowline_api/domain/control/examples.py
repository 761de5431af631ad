"""OpenAPI examples of the execution command routes."""

from __future__ import annotations

EXECUTION_ID = "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"
PATH = f"/api/v1/tenants/dev/executions/{EXECUTION_ID}"
NOT_FOUND = f"execution {EXECUTION_ID} does not exist"
