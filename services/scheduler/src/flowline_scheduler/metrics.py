"""What the scheduler counts: timers and schedule runs and their lateness, recoveries, retention, webhooks."""

from __future__ import annotations

from flowline.db.retention import REMOVED_TABLES
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A timer fires on its announcement (at once) or on the next poll (FLOWLINE_TIMER_POLL_INTERVAL_SECONDS).
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# A delivery is due as soon as its event is consumed; retries stretch its latency to hours.
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)


class SchedulerMetrics:
    """Every metric of the scheduler (its consumer and outbox count in ``MessagingMetrics``)."""

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
        self.retention_removed_rows = Counter(
            "flowline_retention_removed_rows_total",
            "Rows removed by retention and bulk deletes, by table (executions, step_executions, task_logs, …, "
            "audit_logs).",
            ["table"],
            registry=registry,
        )
        for table in (*REMOVED_TABLES, "audit_logs"):  # every table shows, at 0, before anything is removed
            self.retention_removed_rows.labels(table)
        self.retention_not_archived = Counter(
            "flowline_retention_not_archived_total",
            "Root executions retention kept because their archive could not be written (FLOWLINE_ARCHIVE_DIR).",
            registry=registry,
        )
        self.retention_behind = Gauge(
            "flowline_retention_behind_seconds",
            "How long the oldest removable execution has been past its retention at the end of a retention pass "
            "(0: nothing is waiting).",
            registry=registry,
        )
        self.schedule_runs = Counter(
            "flowline_schedule_runs_total",
            "Fire times of schedules, by outcome: started, already_started (by another replica or a backfill), "
            "skipped (overlap), buffered (overlap buffer_one), missed (beyond the catch-up window) or failed.",
            ["outcome"],
            registry=registry,
        )
        self.schedule_lateness = Histogram(
            "flowline_schedule_lateness_seconds",
            "How long after its fire time a schedule's run started.",
            registry=registry,
            buckets=LATENESS_BUCKETS,
        )
        self._add_webhook_metrics(registry)
        self.task_log_partitions = Counter(
            "flowline_task_log_partitions_total",
            "Day partitions of the task logs created ahead (created), or dropped whole past retention (dropped).",
            ["change"],
            registry=registry,
        )

    def _add_webhook_metrics(self, registry: CollectorRegistry) -> None:
        """What the webhook deliveries count."""
        self.webhook_deliveries = Counter(
            "flowline_webhook_deliveries_total",
            "Webhook delivery attempts settled, by what became of the delivery: succeeded, retrying (due again "
            "later) or failed (no attempts left).",
            ["outcome"],
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "flowline_webhook_delivery_attempts_total",
            "Webhook delivery attempts, by result: success (2xx), http_error (another status), timeout, "
            "connection_error or refused (the outbound policy, or a secret that no key opens).",
            ["result"],
            registry=registry,
        )
        self.webhook_delivery_latency = Histogram(
            "flowline_webhook_delivery_latency_seconds",
            "From a state event's commit to the receiver's 2xx answer, retries included.",
            registry=registry,
            buckets=DELIVERY_BUCKETS,
        )
        self.webhook_deliveries_recovered = Counter(
            "flowline_webhook_deliveries_recovered_total",
            "Webhook deliveries the sweep derived from stored events because the events topic had not recorded "
            "them within the grace period (FLOWLINE_WEBHOOK_SWEEP_GRACE_SECONDS): events the broker lost.",
            registry=registry,
        )
        self.webhooks_disabled = Counter(
            "flowline_webhooks_disabled_total",
            "Webhooks disabled automatically because their every delivery failed for too long.",
            registry=registry,
        )
