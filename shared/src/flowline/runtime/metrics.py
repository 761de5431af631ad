"""Prometheus metrics shared by the services, registered in a registry each service owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MessagingMetrics:
    """Counters and histograms of the Kafka helpers (consumers, outbox)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "flowline_messages_consumed_total",
            "Messages handled by a consumer, by outcome (ok or dead_lettered).",
            ["consumer", "outcome"],
            registry=registry,
        )
        self.handle_seconds = Histogram(
            "flowline_message_handle_seconds",
            "Time to handle one consumed message, database commit included.",
            ["consumer"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.handler_failures = Counter(
            "flowline_message_handler_failures_total",
            "Handler failures that led to a retry of the message.",
            ["consumer"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "flowline_consumer_lag_messages",
            "Messages on the topic after this consumer's position, summed over the partitions it owns.",
            ["consumer", "topic"],
            registry=registry,
        )
        self.outbox_published = Counter(
            "flowline_outbox_published_total",
            "Outbox rows published, by path (immediate after commit, or relay).",
            ["path"],
            registry=registry,
        )
        self.outbox_publish_failures = Counter(
            "flowline_outbox_publish_failures_total",
            "Publishes after commit that failed and were left to the relay.",
            registry=registry,
        )
        self.outbox_refused = Counter(
            "flowline_outbox_refused_total",
            "Outbox rows too large for the broker, dead-lettered as a note instead of published.",
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "flowline_outbox_backlog_messages",
            "Outbox rows older than the relay's grace period, i.e. still unpublished (counted up to a cap).",
            registry=registry,
        )
