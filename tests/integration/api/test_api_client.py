from __future__ import annotations

from litestar.testing import AsyncTestClient


async def test_requests_are_relative_to_the_dev_tenant(api: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await api.get("workflows/demo.missing")

    assert response.status_code == 404
    assert response.json()["detail"] == "workflow 'demo.missing' does not exist"
