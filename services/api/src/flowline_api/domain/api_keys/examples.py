"""OpenAPI examples of the API key routes."""

from __future__ import annotations

PATH = "/api/v1/tenants/dev/api-keys"
KEY_ID = "0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"
