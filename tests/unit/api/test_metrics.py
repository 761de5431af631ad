"""The api's request metrics go into the app's own registry through Litestar's Prometheus middleware.

The middleware is handed that registry through methods Litestar does not document
(``flowline_api.metrics.prometheus_middleware_recording_into``): these tests fail when an upgrade stops
calling them or changes the labels it passes.
"""

from __future__ import annotations

from flowline_api.metrics import ApiMetrics
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.plugins.prometheus import PrometheusMiddleware
from litestar.testing import TestClient
from prometheus_client import REGISTRY, CollectorRegistry

RECORDING_METHODS = ("request_count", "request_time", "requests_in_progress", "requests_error_count")


@get("/things/{thing_id:str}")
async def read_thing(thing_id: FromPath[str]) -> str:
    return thing_id


@get("/broken")
async def broken() -> None:
    raise RuntimeError("a handler that fails")


def _sample(registry: CollectorRegistry, name: str, path: str, status: str) -> float | None:
    labels = {"method": "GET", "path": path, "status_code": status, "app_name": "api"}
    return registry.get_sample_value(name, labels)


def test_litestar_still_asks_its_middleware_for_each_metric() -> None:
    missing = [name for name in RECORDING_METHODS if not callable(getattr(PrometheusMiddleware, name, None))]
    assert missing == [], f"Litestar's PrometheusMiddleware lost {missing}: see flowline_api/metrics.py"


def test_requests_are_counted_in_the_apps_own_registry_by_route_template() -> None:
    registry = CollectorRegistry()
    app = Litestar([read_thing, broken], middleware=[ApiMetrics(registry).middleware()], logging_config=None)

    with TestClient(app) as client:
        assert client.get("/things/a").status_code == 200
        assert client.get("/things/b").status_code == 200
        assert client.get("/broken").status_code == 500

    route = "/things/{thing_id}"
    assert _sample(registry, "flowline_http_requests_total", route, "200") == 2, (
        "Litestar's PrometheusMiddleware no longer records through the api's metrics: see flowline_api/metrics.py"
    )
    assert _sample(registry, "flowline_http_request_duration_seconds_count", route, "200") == 2
    assert _sample(registry, "flowline_http_requests_error_total", "/broken", "500") == 1
    assert _sample(registry, "flowline_http_requests_in_progress", route, "200") == 0
    # Nothing went to the process-global registry, where Litestar's own metrics would have been created.
    assert [metric.name for metric in REGISTRY.collect() if metric.name.startswith("flowline_http")] == []
