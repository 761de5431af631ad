"""The scheduler process: timers, lease recovery, redrive, bulk operations, task log partitions, the outbox relay."""

from __future__ import annotations

from flowline.messages import TimerMessage, decoder
from flowline.ops import configure_logging
from flowline.runtime import OutboxRelay, Runnable, Runtime, run_service, serve
from flowline.settings import Settings, load_settings

from flowline_scheduler.bulk import BulkOperationLoop
from flowline_scheduler.leases import LeaseRecovery
from flowline_scheduler.log_partitions import LogPartitionLoop, retention_seconds
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.redrive import InboxRetention, Redrive
from flowline_scheduler.timers import TimerLoop


async def run_scheduler(settings: Settings) -> None:
    """Run the scheduler until SIGTERM."""
    log_retention_seconds = retention_seconds(settings)  # a bad value stops the process before it connects
    runtime = await Runtime.open(settings)
    try:
        metrics = SchedulerMetrics(runtime.registry)
        timers = TimerLoop(runtime.pool, runtime.outbox, settings.topics, metrics, settings.timer_poll_interval_seconds)
        leases = LeaseRecovery(
            runtime.pool, runtime.outbox, settings.topics, metrics, max(settings.lease_seconds / 4, 0.5)
        )
        redrive = Redrive(
            runtime.pool,
            runtime.outbox,
            settings.topics,
            after_seconds=settings.redrive_after_seconds,
            interval_seconds=max(settings.redrive_after_seconds / 3, 0.5),
        )
        retention = InboxRetention(
            runtime.pool, retention_seconds=settings.inbox_retention_days * 86400, interval_seconds=60
        )
        bulk = BulkOperationLoop(
            runtime.pool, runtime.outbox, settings.topics, settings.bulk_operation_poll_interval_seconds
        )
        log_partitions = LogPartitionLoop(runtime.pool, metrics, retention_seconds=log_retention_seconds)
        relay = OutboxRelay(runtime.outbox, settings.outbox_relay_interval_seconds)
        announcements = runtime.consumer(
            "scheduler",
            [settings.topics.timers],
            decoder(TimerMessage),
            handler=timers.handle_timer_message,
            background=True,
        )
        await announcements.start()
        await serve(
            "scheduler",
            runtime,
            [
                Runnable(announcements.run, announcements.stop),
                Runnable(timers.start, timers.stop),
                Runnable(leases.start, leases.stop),
                Runnable(redrive.start, redrive.stop),
                Runnable(retention.start, retention.stop),
                Runnable(bulk.start, bulk.stop),
                Runnable(log_partitions.start, log_partitions.stop),
                Runnable(relay.start, relay.stop),
            ],
            http_port=settings.scheduler_http_port,
        )
    finally:
        await runtime.close()


def main() -> None:
    """Entry point of ``flowline-scheduler``."""
    settings = load_settings()
    configure_logging("scheduler", settings.log_level, settings.log_format)
    run_service(run_scheduler(settings))
