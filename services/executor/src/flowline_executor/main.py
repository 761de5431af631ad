"""The executor process: consumes execution requests and tasks, runs steps, renews its leases."""

from __future__ import annotations

from typing import Any

from flowline.domain.actions import load_actions
from flowline.domain.agents import auth_cipher
from flowline.kafka.consumer import MessageConsumer
from flowline.messages import ControlMessage, RequestMessage, SubmissionMessage, TaskMessage, decoder
from flowline.runtime.loops import LoopService
from flowline.runtime.ops import configure_logging
from flowline.runtime.service import OutboxRelay, Runnable, Runtime, run_service, serve
from flowline.settings import Settings, load_settings

from flowline_executor.engine import Engine
from flowline_executor.metrics import ExecutorMetrics

COMMANDS_CONSUMER = "executor"  # the group of the requests and control topics
TASKS_CONSUMER = "executor-tasks"


class LeaseRenewal(LoopService):
    """Keeps the leases of running attempts alive so the scheduler does not recover them."""

    def __init__(self, engine: Engine, interval_seconds: float) -> None:
        super().__init__("lease-renewal", interval_seconds)
        self._engine = engine

    async def run_once(self) -> None:
        """Renew every lease this process holds."""
        await self._engine.renew_leases()


def commands_consumer(runtime: Runtime, engine: Engine, name: str = COMMANDS_CONSUMER) -> MessageConsumer[Any]:
    """The consumer of the submissions, requests and control topics, in the group ``name``.

    One consumer follows the three: one fetch, not three, polls the broker for them. The submissions topic, the
    one other systems produce to, decodes SubmitExecution and CancelSubmission only, and the internal topics only
    the services' own messages (docs/architecture.md §5.1): anything else is dead-lettered.
    """
    topics = runtime.settings.topics
    return runtime.consumer(
        name,
        [topics.submissions, topics.requests, topics.control],
        decoder(RequestMessage | ControlMessage),
        topic_decoders={topics.submissions: decoder(SubmissionMessage)},
        handler=engine.handle_command,
    )


async def run_executor(settings: Settings) -> None:
    """Run the executor until SIGTERM."""
    runtime = await Runtime.open(settings)
    try:
        engine = Engine(settings, runtime.pool, runtime.outbox, load_actions(), ExecutorMetrics(runtime.registry))
        commands = commands_consumer(runtime, engine)
        tasks = runtime.consumer(
            TASKS_CONSUMER,
            [settings.topics.tasks],
            decoder(TaskMessage),
            handler=engine.handle_task,
            background=settings.eager_dispatch,  # without eager dispatch, every step waits on this topic
        )
        relay = OutboxRelay(
            runtime.outbox, settings.outbox_relay_interval_seconds, settings.outbox_relay_fallback_seconds
        )
        leases = LeaseRenewal(engine, settings.lease_seconds / 3)
        await commands.start()
        await tasks.start()

        async def stop_tasks() -> None:
            await tasks.stop()
            await engine.drain(grace_seconds=10)

        await serve(
            "executor",
            runtime,
            [
                Runnable(commands.run, commands.stop),
                Runnable(tasks.run, stop_tasks),
                Runnable(relay.start, relay.stop),
                Runnable(leases.start, leases.stop),
            ],
            http_port=settings.executor_http_port,
        )
        await engine.close()
    finally:
        await runtime.close()


def main() -> None:
    """Entry point of ``flowline-executor``."""
    settings = load_settings()
    configure_logging("executor", settings.log_level, settings.log_format)
    auth_cipher(settings.secret_key)  # agent steps need the key: fail at start, not at the first agent call
    run_service(run_executor(settings))
