"""What the api counts: requests by route template and status, through Litestar's Prometheus middleware."""

from __future__ import annotations

from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The label names in the order PrometheusMiddleware passes their values; ``path`` is the route template.
REQUEST_LABELS = ("method", "path", "status_code", "app_name")
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    """Every metric of the api's own (its outbox relay counts in ``MessagingMetrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "flowline_http_requests_total",
            "Requests answered, by method, route template and status.",
            REQUEST_LABELS,
            registry=registry,
        )
        self.request_seconds = Histogram(
            "flowline_http_request_duration_seconds",
            "From a request's arrival to the last byte of its answer (a live stream: its whole life).",
            REQUEST_LABELS,
            registry=registry,
            buckets=REQUEST_BUCKETS,
        )
        self.requests_in_progress = Gauge(
            "flowline_http_requests_in_progress",
            "Requests being answered (live streams included).",
            REQUEST_LABELS,
            registry=registry,
        )
        self.request_errors = Counter(
            "flowline_http_requests_error_total",
            "Requests answered with a 5xx status.",
            REQUEST_LABELS,
            registry=registry,
        )

    def middleware(self) -> DefineMiddleware:
        """Litestar's Prometheus middleware recording into these metrics, for every route but health and metrics."""
        config = PrometheusConfig(
            app_name="api",
            prefix="flowline_http",
            group_path=True,  # label by route template, not by the path with its ids
            exclude=["^/health", "^/metrics$"],  # scrapes and probes would drown the traffic
            middleware_class=prometheus_middleware_recording_into(self),
        )
        return config.middleware


def prometheus_middleware_recording_into(metrics: ApiMetrics) -> type[PrometheusMiddleware]:
    """Litestar's Prometheus middleware, recording into ``metrics`` instead of the process-global registry.

    Litestar offers no public way to give its middleware a registry (2.25; its config has no such field): the
    middleware creates its metrics once per process in prometheus_client's global registry, through four
    undocumented methods that its ``__call__`` asks for each metric with the request's labels. Overriding them is
    the api's one use of the middleware's internals, so that each app owns its registry (no globals) and every
    app made in one process counts on its own. ``tests/unit/api/test_metrics.py`` fails if an upgrade stops
    calling them or changes the labels.
    """

    class ApiPrometheusMiddleware(PrometheusMiddleware):
        def request_count(self, labels: dict[str, str | int | float]) -> Counter:
            return metrics.requests

        def request_time(self, labels: dict[str, str | int | float]) -> Histogram:
            return metrics.request_seconds

        def requests_in_progress(self, labels: dict[str, str | int | float]) -> Gauge:
            return metrics.requests_in_progress

        def requests_error_count(self, labels: dict[str, str | int | float]) -> Counter:
            return metrics.request_errors

    return ApiPrometheusMiddleware
