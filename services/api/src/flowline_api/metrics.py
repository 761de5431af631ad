"""What the api counts: requests by route template and status, through Litestar's Prometheus middleware."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.types import ASGIApp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The label names in the order PrometheusMiddleware passes their values; ``path`` is the route template.
REQUEST_LABELS = ("method", "path", "status_code", "app_name")
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    """Every metric of the api's own (its outbox relay counts in ``flowline.metrics.MessagingMetrics``)."""

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
        config = ApiPrometheusConfig(
            metrics=self,
            app_name="api",
            prefix="flowline_http",
            group_path=True,  # label by route template, not by the path with its ids
            exclude=["^/health", "^/metrics$"],  # scrapes and probes would drown the traffic
            middleware_class=ApiPrometheusMiddleware,
        )
        return config.middleware


@dataclass
class ApiPrometheusConfig(PrometheusConfig):
    """Litestar's middleware configuration, with the metrics to record into."""

    metrics: ApiMetrics | None = field(default=None)


class ApiPrometheusMiddleware(PrometheusMiddleware):
    """Litestar's Prometheus middleware, recording into the api's registry instead of the process-global one.

    The base class creates its metrics once per process in prometheus_client's global registry; each app
    owns its registry here (DESIGN: no globals), so every app made in one process counts on its own.
    """

    def __init__(self, app: ASGIApp, config: ApiPrometheusConfig) -> None:
        super().__init__(app, config)
        assert config.metrics is not None
        self._api_metrics = config.metrics

    def request_count(self, labels: dict[str, Any]) -> Counter:
        """Requests answered."""
        return self._api_metrics.requests

    def request_time(self, labels: dict[str, Any]) -> Histogram:
        """Request durations."""
        return self._api_metrics.request_seconds

    def requests_in_progress(self, labels: dict[str, Any]) -> Gauge:
        """Requests being answered."""
        return self._api_metrics.requests_in_progress

    def requests_error_count(self, labels: dict[str, Any]) -> Counter:
        """Requests answered with a 5xx status."""
        return self._api_metrics.request_errors
