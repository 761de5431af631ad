"""The log-ingest process: consumes task log records and persists them in batches."""

from __future__ import annotations

from flowline.db.task_logs import STAGING
from flowline.domain.task_log_limits import LogLimits
from flowline.messages import LogMessage, decoder
from flowline.runtime.ops import configure_logging
from flowline.runtime.service import Runnable, Runtime, run_service, serve
from flowline.settings import Settings, load_settings

from flowline_log_ingest.ingest import LogWriter
from flowline_log_ingest.metrics import LogIngestMetrics


async def run_log_ingest(settings: Settings) -> None:
    """Run log-ingest until SIGTERM."""
    runtime = await Runtime.open(settings, session_setup=STAGING)
    try:
        writer = LogWriter(
            runtime.pool, LogIngestMetrics(runtime.registry), LogLimits.from_settings(settings), staging_ready=True
        )
        consumer = runtime.consumer(
            "log-ingest",
            [settings.topics.logs],
            decoder(LogMessage),
            batch_handler=writer.write,
            max_records=5000,
            background=True,
        )
        await consumer.start()
        await serve(
            "log-ingest", runtime, [Runnable(consumer.run, consumer.stop)], http_port=settings.log_ingest_http_port
        )
    finally:
        await runtime.close()


def main() -> None:
    """Entry point of ``flowline-log-ingest``."""
    settings = load_settings()
    configure_logging("log-ingest", settings.log_level, settings.log_format)
    run_service(run_log_ingest(settings))
