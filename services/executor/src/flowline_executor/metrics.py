"""What the executor counts: executions, steps and attempts, recorded once their transaction committed."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

# Executions and steps include sleeps, waits for promises and retry backoffs: from milliseconds to days.
LONG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)
ATTEMPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass
class Outcomes:
    """What one state change did, counted only after its transaction commits (a rollback counts nothing)."""

    executions_started: int = 0
    executions_finished: list[tuple[str, float]] = field(default_factory=list)  # status, seconds since its start
    steps_started: list[str] = field(default_factory=list)  # step types
    steps_finished: list[tuple[str, str, float | None]] = field(default_factory=list)  # type, status, seconds
    retries: list[str] = field(default_factory=list)  # step types of failed attempts that wait for another
    attempts: list[tuple[str, bool, float]] = field(default_factory=list)  # type, failed, seconds (run in the change)


class ExecutorMetrics:
    """Every metric of the executor (its consumers and outbox count in ``MessagingMetrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.executions_started = Counter(
            "flowline_executions_started_total",
            "Executions that started running (once more for each retry of a failed execution).",
            registry=registry,
        )
        self.executions_finished = Counter(
            "flowline_executions_finished_total",
            "Executions that reached a final status.",
            ["status"],
            registry=registry,
        )
        self.execution_seconds = Histogram(
            "flowline_execution_duration_seconds",
            "From an execution's first start to its final status.",
            ["status"],
            registry=registry,
            buckets=LONG_BUCKETS,
        )
        self.steps_started = Counter(
            "flowline_steps_started_total",
            "Steps that started running (their first attempt; a sleep, wait or child workflow that began).",
            ["step_type"],
            registry=registry,
        )
        self.steps_finished = Counter(
            "flowline_steps_finished_total",
            "Steps that reached a final status (completed, failed, skipped or cancelled).",
            ["step_type", "status"],
            registry=registry,
        )
        self.step_seconds = Histogram(
            "flowline_step_duration_seconds",
            "From a step's start to its final status, retries and their waits included (steps that ran).",
            ["step_type", "status"],
            registry=registry,
            buckets=LONG_BUCKETS,
        )
        self.attempts = Counter(
            "flowline_step_attempts_total",
            "Finished attempts of action, agent and http steps, by outcome (completed or failed).",
            ["step_type", "outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "flowline_step_attempt_duration_seconds",
            "Duration of attempts of action, agent and http steps.",
            ["step_type"],
            registry=registry,
            buckets=ATTEMPT_BUCKETS,
        )
        self.retries = Counter(
            "flowline_step_retries_total",
            "Failed attempts that wait on a durable timer for another attempt.",
            ["step_type"],
            registry=registry,
        )

    def record(self, outcomes: Outcomes) -> None:
        """Count what a committed state change did."""
        if outcomes.executions_started:
            self.executions_started.inc(outcomes.executions_started)
        for status, seconds in outcomes.executions_finished:
            self.executions_finished.labels(status).inc()
            self.execution_seconds.labels(status).observe(seconds)
        for step_type in outcomes.steps_started:
            self.steps_started.labels(step_type).inc()
        for step_type, status, step_seconds in outcomes.steps_finished:
            self.steps_finished.labels(step_type, status).inc()
            if step_seconds is not None:
                self.step_seconds.labels(step_type, status).observe(step_seconds)
        for step_type in outcomes.retries:
            self.retries.labels(step_type).inc()
        for step_type, failed, seconds in outcomes.attempts:
            self.attempt_finished(step_type, failed, seconds)

    def attempt_finished(self, step_type: str, failed: bool, seconds: float) -> None:
        """Count an attempt this process ran."""
        self.attempts.labels(step_type, "failed" if failed else "completed").inc()
        self.attempt_seconds.labels(step_type).observe(seconds)
