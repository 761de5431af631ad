"""The scheduler process: timers, schedules, recovery, redrive, bulk operations, retention, logs, webhooks."""

from __future__ import annotations

from pathlib import Path

from flowline.domain.agents import auth_cipher
from flowline.messages import EventMessage, TimerMessage, decoder
from flowline.runtime.loops import LoopService
from flowline.runtime.ops import configure_logging
from flowline.runtime.service import OutboxRelay, Runnable, Runtime, run_service, serve
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Settings, load_settings, retention_setting

from flowline_scheduler.bulk import BulkOperationLoop
from flowline_scheduler.leases import LeaseRecovery
from flowline_scheduler.log_partitions import LogPartitionLoop
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.redrive import InboxRetention, Redrive
from flowline_scheduler.retention import RetentionLoop, RetentionPeriods
from flowline_scheduler.schedules import ScheduleLoop
from flowline_scheduler.schedules_ahead import ScheduleAheadLoop
from flowline_scheduler.timers import TimerLoop
from flowline_scheduler.webhook_events import DeliveryRecorder, WebhookTenants
from flowline_scheduler.webhook_sweep import WebhookSweep
from flowline_scheduler.webhooks import DeliveryRetention, WebhookDeliveryLoop, create_webhook_client


def _polling_loops(settings: Settings, runtime: Runtime, metrics: SchedulerMetrics, wakeups: Wakeups) -> list[Runnable]:
    """The loops that find their work in the database (and so may run in every replica)."""
    archive_dir = Path(settings.archive_dir) if settings.archive_dir else None
    execution_retention = retention_setting(settings, "execution_retention")
    leases = LeaseRecovery(runtime.pool, runtime.outbox, settings.topics, metrics, max(settings.lease_seconds / 4, 0.5))
    redrive = Redrive(
        runtime.pool,
        runtime.outbox,
        settings.topics,
        after_seconds=settings.redrive_after_seconds,
        interval_seconds=max(settings.redrive_after_seconds / 3, 0.5),
    )
    inbox_retention = InboxRetention(
        runtime.pool, retention_seconds=settings.inbox_retention_days * 86400, interval_seconds=60
    )
    bulk = BulkOperationLoop(
        runtime.pool,
        runtime.outbox,
        settings.topics,
        settings.bulk_operation_poll_interval_seconds,
        metrics=metrics,
        archive_dir=archive_dir,
        backfill_runs_per_second=settings.backfill_runs_per_second,
        wakeups=wakeups,
    )
    schedules = ScheduleLoop(
        runtime.pool,
        runtime.outbox,
        settings.topics,
        metrics,
        settings.schedule_poll_interval_seconds,
        wakeups=wakeups,
    )
    lifecycle = RetentionLoop(
        runtime.pool,
        metrics,
        RetentionPeriods(
            executions=retention_setting(settings, "execution_retention"),
            audit=retention_setting(settings, "audit_retention"),
        ),
        interval_seconds=settings.retention_interval_seconds,
        batch_size=settings.retention_batch_size,
        archive_dir=archive_dir,
    )
    delivery_retention = DeliveryRetention(
        runtime.pool, retention_seconds=settings.webhook_delivery_retention_days * 86400, interval_seconds=60
    )
    log_partitions = LogPartitionLoop(
        runtime.pool, metrics, default_retention_seconds=execution_retention, archiving=archive_dir is not None
    )
    loops: list[LoopService] = [
        leases,
        redrive,
        inbox_retention,
        bulk,
        schedules,
        lifecycle,
        log_partitions,
        delivery_retention,
    ]
    if settings.schedule_prepare_ahead_seconds > 0:
        crowded = ScheduleAheadLoop(
            runtime.pool,
            runtime.outbox,
            settings.topics,
            metrics,
            settings.schedule_poll_interval_seconds,
            lead_seconds=settings.schedule_prepare_ahead_seconds,
            wakeups=wakeups,
        )
        loops.append(crowded)
    return [Runnable(loop.start, loop.stop) for loop in loops]


async def run_scheduler(settings: Settings) -> None:
    """Run the scheduler until SIGTERM."""
    cipher = auth_cipher(settings.secret_key)  # webhook secrets: fail at start, not at the first delivery
    runtime = await Runtime.open(settings)
    webhook_client = create_webhook_client(settings)
    try:
        metrics = SchedulerMetrics(runtime.registry)
        wakeups = Wakeups(settings.database_url, fallback_seconds=settings.scheduler_fallback_poll_seconds)
        timers = TimerLoop(
            runtime.pool, runtime.outbox, settings.topics, metrics, settings.timer_poll_interval_seconds, wakeups
        )
        announcements = runtime.consumer(
            "scheduler",
            [settings.topics.timers],
            decoder(TimerMessage),
            handler=timers.handle_timer_message,
            background=True,
        )
        webhooks = WebhookDeliveryLoop(runtime.pool, cipher, webhook_client, metrics, settings, wakeups)
        recorder = DeliveryRecorder(runtime.pool, on_new=webhooks.wake, tenants=WebhookTenants(wakeups))
        sweep = WebhookSweep(
            runtime.pool,
            metrics,
            webhooks.wake,
            interval_seconds=settings.webhook_sweep_interval_seconds,
            grace_seconds=settings.webhook_sweep_grace_seconds,
            lookback_seconds=settings.webhook_sweep_lookback_seconds,
            batch_size=settings.webhook_sweep_batch_size,
        )
        # Background: a webhook hears of an event one long fetch wait later at most, and the scheduler does not
        # fetch every few milliseconds while executions run.
        events = runtime.consumer(
            "scheduler-webhooks",
            [settings.topics.events],
            decoder(EventMessage),
            batch_handler=recorder.handle_events,
            background=True,
        )
        relay = OutboxRelay(
            runtime.outbox, settings.outbox_relay_interval_seconds, settings.outbox_relay_fallback_seconds
        )
        await announcements.start()
        await events.start()
        await serve(
            "scheduler",
            runtime,
            [
                Runnable(wakeups.run, wakeups.stop),
                Runnable(announcements.run, announcements.stop),
                Runnable(timers.start, timers.stop),
                Runnable(events.run, events.stop),
                Runnable(webhooks.start, webhooks.close),
                Runnable(sweep.start, sweep.stop),
                *_polling_loops(settings, runtime, metrics, wakeups),
                Runnable(relay.start, relay.stop),
            ],
            http_port=settings.scheduler_http_port,
        )
    finally:
        await webhook_client.aclose()
        await runtime.close()


def main() -> None:
    """Entry point of ``flowline-scheduler``."""
    settings = load_settings()
    configure_logging("scheduler", settings.log_level, settings.log_format)
    run_service(run_scheduler(settings))
