"""What log-ingest counts (its consumer's lag and handling time count in ``MessagingMetrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# The consumer hands over up to 5,000 messages per partition, each of one record or a batch of them.
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000)


class LogIngestMetrics:
    """Every metric of log-ingest's own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "flowline_task_log_records_total",
            "Task log records consumed, by outcome: written; dropped (its task had reached its record or byte limit); "
            "or duplicate (already stored or counted, e.g. redelivered).",
            ["outcome"],
            registry=registry,
        )
        self.batch_records = Histogram(
            "flowline_task_log_batch_records",
            "Task log records written by one insert.",
            registry=registry,
            buckets=BATCH_BUCKETS,
        )
