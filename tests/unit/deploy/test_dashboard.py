"""The Grafana dashboard asks only for metrics the services define, so it cannot drift from the code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowline.runtime.metrics import MessagingMetrics
from flowline_api.metrics import ApiMetrics
from flowline_executor.metrics import ExecutorMetrics
from flowline_log_ingest.metrics import LogIngestMetrics
from flowline_scheduler.metrics import SchedulerMetrics
from prometheus_client import CollectorRegistry

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "flowline-dashboard.json"
METRIC_NAME = re.compile(r"\bflowline_[a-z_]+")
HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")
# Counters end in _total, durations in _seconds; gauges and histograms of counts name what they count.
NAME_SUFFIXES = ("_total", "_seconds", "_bytes", "_messages", "_records", "_in_progress")


def defined_metrics() -> dict[str, str]:
    """Every metric the services define, by the name a query uses, with its type."""
    registry = CollectorRegistry()
    for metrics_class in (MessagingMetrics, ApiMetrics, ExecutorMetrics, SchedulerMetrics, LogIngestMetrics):
        metrics_class(registry)
    return {
        (family.name + "_total" if family.type == "counter" else family.name): family.type
        for family in registry.collect()
    }


def expressions(node: Any) -> Iterator[str]:
    """Every ``expr`` in the dashboard, rows' nested panels included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def test_every_dashboard_metric_is_defined() -> None:
    defined = defined_metrics()
    queries = list(expressions(json.loads(DASHBOARD.read_text())))
    assert queries, "the dashboard has no queries"
    for query in queries:
        names = METRIC_NAME.findall(query)
        assert names, f"a query names no flowline metric: {query}"
        for name in names:
            base = HISTOGRAM_SERIES.sub("", name)
            assert base in defined, f"{name} in {query!r} is defined by no service"
            if base != name:
                assert defined[base] == "histogram", f"{name}: {base} is not a histogram"


def test_every_defined_metric_is_on_the_dashboard() -> None:
    shown = {HISTOGRAM_SERIES.sub("", name) for name in METRIC_NAME.findall(DASHBOARD.read_text())}
    assert set(defined_metrics()) <= shown


def test_metric_names_follow_the_convention() -> None:
    for name, kind in defined_metrics().items():
        assert name.startswith("flowline_") and name.endswith(NAME_SUFFIXES), name
        assert (kind == "counter") == name.endswith("_total"), f"{name} is a {kind}"
