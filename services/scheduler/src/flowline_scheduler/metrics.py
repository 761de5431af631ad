"""What the scheduler counts: timers fired and how late, steps recovered from workers that died."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# A timer fires on its announcement (at once) or on the next poll (FLOWLINE_TIMER_POLL_INTERVAL_SECONDS).
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class SchedulerMetrics:
    """Every metric of the scheduler (its consumer and outbox count in ``flowline.metrics.MessagingMetrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.timers_fired = Counter(
            "flowline_timers_fired_total",
            "Durable timers fired, by kind (sleep, retry, promise, execution_timeout).",
            ["kind"],
            registry=registry,
        )
        self.timer_lateness = Histogram(
            "flowline_timer_lateness_seconds",
            "How long after it was due a timer fired.",
            ["kind"],
            registry=registry,
            buckets=LATENESS_BUCKETS,
        )
        self.lease_recoveries = Counter(
            "flowline_lease_recoveries_total",
            "Running steps whose worker stopped renewing its lease: dispatched again (redispatched), or failed "
            "after too many lost attempts (failed).",
            ["outcome"],
            registry=registry,
        )
        self.task_log_partitions = Counter(
            "flowline_task_log_partitions_total",
            "Day partitions of the task logs created ahead (created), or dropped whole past retention (dropped).",
            ["change"],
            registry=registry,
        )
