"""The submissions topic: the one other systems produce to, which starts executions and takes nothing else."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
from flowline.domain.actions import load_actions
from flowline.messages import (
    CancelExecution,
    EventMessage,
    ExecutionRequested,
    RequestMessage,
    SubmissionRejected,
    decoder,
    encode,
)
from flowline.runtime.service import Runtime
from flowline.settings import Settings
from flowline_executor.engine import Engine
from flowline_executor.main import commands_consumer
from flowline_executor.metrics import ExecutorMetrics
from prometheus_client import CollectorRegistry

from tests.support import define_and_start, eventually, read_topic

WAITING = {"steps": [{"id": "approval", "type": "wait"}]}
ECHO = {"steps": [{"id": "echo", "type": "action", "action": "core.echo", "input": "{{ input }}"}], "output": "ok"}


def submission(workflow: str, key: str, **fields: Any) -> bytes:
    """A SubmitExecution as another system writes it."""
    body = {"type": "SubmitExecution", "schema_version": 1, "id": str(uuid.uuid4()), "tenant": "dev"}
    return json.dumps(body | {"workflow": workflow, "input": {"n": 1}, "idempotency_key": key, **fields}).encode()


async def _consume_until(runtime: Runtime, settings: Settings, key: str, status: str) -> None:
    """Run the executor's commands consumer until the execution submitted with ``key`` has ``status``."""
    engine = Engine(settings, runtime.pool, runtime.outbox, load_actions(), ExecutorMetrics(CollectorRegistry()))
    consumer = commands_consumer(runtime, engine, name=f"test-commands-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:

        async def reached() -> bool:
            await consumer.poll_once()
            found = await runtime.pool.fetchval("SELECT status FROM executions WHERE idempotency_key = $1", key)
            return bool(found == status)

        await eventually(reached, timeout=60)
    finally:
        await consumer.stop()


async def test_a_submission_starts_an_execution_recorded_as_started_by_kafka(
    runtime: Runtime, settings: Settings
) -> None:
    await define_and_start(runtime.pool, settings, "kafka.echo", ECHO, {})
    await runtime.producer.send_and_wait(settings.topics.submissions, submission("kafka.echo", "order-1"))

    await _consume_until(runtime, settings, "order-1", "completed")
    row = await runtime.pool.fetchrow(
        "SELECT started_by, triggered_by, owned_by, output FROM executions WHERE idempotency_key = 'order-1'"
    )
    assert tuple(row) == ("kafka", "kafka", None, "ok")


async def test_anything_but_a_submission_on_the_submissions_topic_is_dead_lettered_and_changes_nothing(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    waiting = await define_and_start(pool, settings, "kafka.wait", WAITING, {})
    await define_and_start(pool, settings, "kafka.echo", ECHO, {})
    (row,) = [row for row in waiting.outbox if row.topic == settings.topics.requests]
    request = decoder(RequestMessage).decode(row.payload)
    assert isinstance(request, ExecutionRequested)
    cancel = CancelExecution(tenant_id=request.tenant_id, execution_id=request.execution_id, reason="from outside")
    # Internal messages of the right tenant, a submission in another's shape, and junk: all refused here.
    refused = [encode(request), encode(cancel), b'{"type": "TaskDispatched"}', b"\x00\xff not json"]
    for value in refused:
        await runtime.producer.send_and_wait(settings.topics.submissions, value, key=b"same")
    await runtime.producer.send_and_wait(settings.topics.submissions, submission("kafka.echo", "after"), key=b"same")

    await _consume_until(runtime, settings, "after", "completed")
    dead = await read_topic(settings, settings.topics.dead_letter, len(refused))
    assert [record.value for record in dead] == refused
    assert all(dict(record.headers)["error"].startswith(b"cannot decode") for record in dead)
    assert await pool.fetchval("SELECT status FROM executions WHERE id = $1", waiting.id) == "pending"
    assert await pool.fetchval("SELECT count(*) FROM step_executions WHERE execution_id = $1", waiting.id) == 0


async def test_a_submission_holding_a_value_postgresql_cannot_take_is_rejected_with_a_reason(
    runtime: Runtime, settings: Settings
) -> None:
    await define_and_start(runtime.pool, settings, "kafka.echo", ECHO, {})
    for key, fields in (("nul", {"input": {"text": "a\u0000b"}}), ("huge-version", {"version": 2**40})):
        await runtime.producer.send_and_wait(
            settings.topics.submissions, submission("kafka.echo", key, **fields), key=key.encode()
        )
    await runtime.producer.send_and_wait(settings.topics.submissions, submission("kafka.echo", "fine"), key=b"fine")

    await _consume_until(runtime, settings, "fine", "completed")
    rejected = (b"nul", b"huge-version")
    records = await read_topic(settings, settings.topics.events, 2, keep=lambda record: record.key in rejected)
    rejections = {record.key: decoder(EventMessage).decode(record.value) for record in records}
    assert all(isinstance(rejection, SubmissionRejected) for rejection in rejections.values())
    reasons = {key: msgspec.structs.asdict(rejection)["reason"] for key, rejection in rejections.items()}
    assert reasons[b"nul"].startswith("a value cannot be stored: ")
    assert reasons[b"huge-version"] == "version must be between 1 and 2147483647"
    started = await runtime.pool.fetchval(
        "SELECT count(*) FROM executions WHERE idempotency_key IN ('nul', 'huge-version')"
    )
    assert started == 0


async def test_a_cancel_from_kafka_cancels_only_what_a_submission_of_that_tenant_started(
    runtime: Runtime, settings: Settings
) -> None:
    pool = runtime.pool
    started_by_api = await define_and_start(pool, settings, "kafka.wait", WAITING, {})
    await pool.execute("UPDATE executions SET idempotency_key = 'api-1' WHERE id = $1", started_by_api.id)
    await pool.execute("INSERT INTO tenants (id, slug, name) VALUES ($1, 'other', 'other')", uuid.uuid4())

    def cancel(tenant: str, key: str) -> bytes:
        body = {"type": "CancelSubmission", "schema_version": 1, "id": str(uuid.uuid4()), "tenant": tenant}
        return json.dumps(body | {"idempotency_key": key, "reason": "withdrawn"}).encode()

    refused = [cancel("other", "order-9"), cancel("dev", "api-1")]  # another tenant's; one the api started
    for value in [submission("kafka.wait", "order-9"), *refused, cancel("dev", "order-9")]:
        await runtime.producer.send_and_wait(settings.topics.submissions, value, key=b"same")

    await _consume_until(runtime, settings, "order-9", "cancelled")
    row = await pool.fetchrow("SELECT cancelled_by, error FROM executions WHERE idempotency_key = 'order-9'")
    assert row["cancelled_by"] == "kafka" and row["error"]["message"] == "withdrawn"
    assert await pool.fetchval("SELECT status FROM executions WHERE id = $1", started_by_api.id) == "pending"
    records = await read_topic(
        settings, settings.topics.events, 2, keep=lambda record: b"SubmissionRejected" in record.value
    )
    rejections = [decoder(EventMessage).decode(record.value) for record in records]
    assert sorted((r.request, r.tenant, r.idempotency_key) for r in rejections) == [  # type: ignore[union-attr]
        ("CancelSubmission", "dev", "api-1"),
        ("CancelSubmission", "other", "order-9"),
    ]
    assert all("no execution of tenant" in r.reason for r in rejections)  # type: ignore[union-attr]
