"""OpenAPI examples of the pack routes."""

from __future__ import annotations

from typing import Any

import msgspec

from flowline_api.domain.workflows.examples import DEFINITION_EXAMPLE

PATH = "/api/v1/tenants/dev/packs"
PACK_CREATE_EXAMPLE: dict[str, Any] = {
    "ref": "demo",
    "label": "Demo",
    "description": "Workflows of the tour",
    "version": "1.0.0",
}
PACK_EXAMPLE: dict[str, Any] = {
    **PACK_CREATE_EXAMPLE,
    "createdAt": "2026-11-22T07:00:00Z",
    "updatedAt": "2026-11-22T07:00:00Z",
}
PACK_INSTALL_EXAMPLE: dict[str, Any] = {
    "files": {
        "pack.yaml": "ref: demo\nlabel: Demo\nversion: 1.0.0\n",
        "workflows/hello.yaml": msgspec.yaml.encode({"label": "Hello", "definition": DEFINITION_EXAMPLE}).decode(),
    }
}
PACK_INSTALLED_EXAMPLE: dict[str, Any] = {
    "pack": PACK_EXAMPLE,
    "change": "created",
    "workflows": [{"file": "workflows/hello.yaml", "ref": "demo.hello", "change": "created", "version": 1}],
}
