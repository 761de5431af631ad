"""Health, readiness and Prometheus metrics of the api, in process over the real database and broker."""

from __future__ import annotations

import uuid

from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = "http://testserver.local"  # the fixture's base URL is the tenant's
EXECUTION_ROUTE = "/api/v1/tenants/{tenant}/executions/{execution_id}"


def _samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name`` in ``exposition``, by their sorted labels."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }


async def test_health_and_readiness(api: AsyncTestClient) -> None:  # type: ignore[type-arg]
    alive = await api.get(f"{ROOT}/health")
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok", "service": "api"}
    ready = await api.get(f"{ROOT}/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}


async def test_requests_are_counted_by_route_template_and_status(api: AsyncTestClient) -> None:  # type: ignore[type-arg]
    for _ in range(2):
        assert (await api.get(f"executions/{uuid.uuid4()}")).status_code == 404
    assert (await api.get("executions")).status_code == 200
    await api.get(f"{ROOT}/health")

    exposition = (await api.get(f"{ROOT}/metrics")).text
    requests = _samples(exposition, "flowline_http_requests_total")
    missing = (("app_name", "api"), ("method", "GET"), ("path", EXECUTION_ROUTE), ("status_code", "404"))
    assert requests[missing] == 2  # two ids, one route: no id ever becomes a label
    assert {dict(labels)["path"] for labels in requests} == {EXECUTION_ROUTE, "/api/v1/tenants/{tenant}/executions"}
    durations = _samples(exposition, "flowline_http_request_duration_seconds_count")
    assert durations[missing] == 2
