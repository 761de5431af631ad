"""The served OpenAPI document describes the agents and audit-logs routes, with examples."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import AsyncTestClient


def referenced_schemas(node: Any, components: dict[str, Any], seen: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                referenced_schemas(components[name], components, seen)
        for value in node.values():
            referenced_schemas(value, components, seen)
    elif isinstance(node, list):
        for value in node:
            referenced_schemas(value, components, seen)


async def test_every_agent_and_audit_route_is_documented_with_examples(api: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await api.get("http://testserver.local/docs/openapi.json")
    assert response.status_code == 200
    document = response.json()
    components = document["components"]["schemas"]
    operations = {
        (method, path): operation
        for path, item in document["paths"].items()
        if "/agents" in path or "/audit-logs" in path
        for method, operation in item.items()
    }

    assert set(operations) == {
        ("post", "/api/v1/tenants/{tenant}/agents"),
        ("get", "/api/v1/tenants/{tenant}/agents"),
        ("get", "/api/v1/tenants/{tenant}/agents/{agent_id}"),
        ("put", "/api/v1/tenants/{tenant}/agents/{agent_id}"),
        ("patch", "/api/v1/tenants/{tenant}/agents/{agent_id}"),
        ("delete", "/api/v1/tenants/{tenant}/agents/{agent_id}"),
        ("get", "/api/v1/tenants/{tenant}/agents/{agent_id}/health"),
        ("get", "/api/v1/tenants/{tenant}/audit-logs"),
    }
    for key, operation in operations.items():
        assert operation.get("summary"), key
        assert operation.get("description"), key
        assert "404" in operation["responses"], key
        seen: set[str] = set()
        referenced_schemas(operation, components, seen)
        text = json.dumps(operation) + json.dumps([components[name] for name in seen])
        assert '"examples"' in text, key
    assert "authConfig" in components["AgentCreate"]["properties"]
    assert "authConfig" not in components["Agent"]["properties"]
    assert "problem+json" in json.dumps(operations[("post", "/api/v1/tenants/{tenant}/agents")]["responses"]["409"])
