"""Webhook deliveries end to end in this process: executions' events on the real topic, the scheduler's consumer and
delivery loop, the api for webhooks, and a real HTTP receiver on this machine; signatures checked with the
``standardwebhooks`` library, an implementation independent of ours.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
import standardwebhooks
from flowline.db.webhooks import claim_due_deliveries
from flowline.domain.agents import auth_cipher
from flowline.messages import EventMessage, decoder
from flowline.runtime.service import Runtime
from flowline.runtime.wakeups import Wakeups
from flowline.settings import Settings
from flowline_scheduler.metrics import SchedulerMetrics
from flowline_scheduler.webhook_events import DeliveryRecorder, WebhookTenants
from flowline_scheduler.webhooks import DeliveryRetention, WebhookDeliveryLoop, create_webhook_client
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry

from tests.integration.api.clients import admin_client
from tests.ports import free_port
from tests.support import CountingServer, define_and_start, eventually, listening, run_until_finished

Client = AsyncTestClient  # type: ignore[type-arg]
ONE_STEP = {"steps": [{"id": "only", "type": "action", "action": "core.echo", "input": {"n": "{{ input.n }}"}}]}


class Scheduler:
    """The scheduler's webhook half: the events consumer (a group of its own) and the delivery loop."""

    def __init__(self, runtime: Runtime, settings: Settings, wakeups: Wakeups | None = None) -> None:
        self.registry = CollectorRegistry()
        self.client = create_webhook_client(settings)
        metrics = SchedulerMetrics(self.registry)
        cipher = auth_cipher(settings.secret_key)
        self.loop = WebhookDeliveryLoop(runtime.pool, cipher, self.client, metrics, settings, wakeups)
        tenants = None if wakeups is None else WebhookTenants(wakeups)
        self.recorder = DeliveryRecorder(runtime.pool, on_new=self.loop.wake, tenants=tenants)
        self.events_seen = 0
        self.consumer: Any = None
        self._runtime, self._settings = runtime, settings

    async def handle_events(self, messages: list[Any]) -> None:
        await self.recorder.handle_events(messages)
        self.events_seen += len(messages)

    async def start(self) -> None:
        """Follow the events topic (tests of test deliveries need no consumer)."""
        self.consumer = self._runtime.consumer(
            f"scheduler-webhooks-{uuid.uuid4().hex[:8]}",
            [self._settings.topics.events],
            decoder(EventMessage),
            batch_handler=self.handle_events,
        )
        await self.consumer.start()

    async def close(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
        await self.client.aclose()

    async def until(self, check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
        """Consume events and send what is due until ``check()`` holds."""

        async def step() -> bool:
            if self.consumer is not None:
                await self.consumer.poll_once()
            await self.loop.run_once()
            await self.loop.drain()
            return await check()

        await eventually(step, timeout)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Retries a fraction of a second apart, so that a test sees several."""
    return msgspec.structs.replace(
        settings, webhook_retry_schedule_seconds="0.1,0.1,0.2,0.2,0.3,0.3,0.5,0.5", webhook_poll_interval_seconds=0.1
    )


@pytest.fixture
async def scheduler(runtime: Runtime, fast: Settings) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(runtime, fast)
    await scheduler.start()
    try:
        yield scheduler
    finally:
        await scheduler.close()


@pytest.fixture
async def api(fast: Settings) -> AsyncIterator[Client]:
    async with admin_client(fast) as client:
        yield client


@pytest.fixture
def receiver() -> Any:
    server = CountingServer()
    yield server
    server.close()


async def create_webhook(api: Client, url: str, **fields: Any) -> dict[str, Any]:
    response = await api.post("webhooks", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def run(runtime: Runtime, settings: Settings, ref: str, n: int = 1) -> str:
    started = await define_and_start(runtime.pool, settings, ref, ONE_STEP, {"n": n})
    await runtime.outbox.publish(started.outbox)
    assert await run_until_finished(runtime, settings, started.id) == "completed"
    return str(started.id)


def received(receiver: CountingServer, prefix: str = "/") -> list[tuple[dict[str, str], bytes]]:
    return [(headers, body) for _method, path, headers, body in receiver.requests if path.startswith(prefix)]


def count(receiver: CountingServer, total: int, prefix: str = "/") -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(received(receiver, prefix)) >= total

    return check


async def test_a_delivery_arrives_signed_and_verifies_with_the_secret(
    runtime: Runtime, fast: Settings, api: Client, scheduler: Scheduler, receiver: CountingServer
) -> None:
    webhook = await create_webhook(api, f"{receiver.url}/ok")
    execution_id = await run(runtime, fast, "demo.hooked", n=7)

    await scheduler.until(count(receiver, 1))

    [(headers, body)] = received(receiver)
    payload = standardwebhooks.Webhook(webhook["secret"]).verify(body, headers)
    assert payload["type"] == "WORKFLOW_COMPLETED"
    data = payload["data"]
    assert data["executionId"] == execution_id and data["workflowRef"] == "demo.hooked"
    assert data["workflowVersion"] == 1 and data["status"] == "completed" and data["startedBy"] == "test"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 32).verify(body, headers)
    log = (await api.get(f"webhooks/{webhook['id']}/deliveries")).json()
    [delivery] = log["items"]
    assert delivery["id"] == headers["webhook-id"] and delivery["executionId"] == execution_id
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1 and delivery["lastStatusCode"] == 200
    assert delivery["deliveredAt"] is not None and delivery["nextAttemptAt"] is None
    assert scheduler.sample("flowline_webhook_deliveries_total", outcome="succeeded") == 1
    assert scheduler.sample("flowline_webhook_delivery_attempts_total", result="success") == 1
    assert scheduler.sample("flowline_webhook_delivery_latency_seconds_count") == 1


async def test_the_events_read_again_add_no_delivery(
    runtime: Runtime, fast: Settings, api: Client, scheduler: Scheduler, receiver: CountingServer
) -> None:
    await create_webhook(api, f"{receiver.url}/ok")
    await run(runtime, fast, "demo.again")
    await scheduler.until(count(receiver, 1))

    events = await runtime.pool.fetchval("SELECT count(*) FROM execution_events")
    again = Scheduler(runtime, fast)  # a new group reads the topic from its start: every event comes again
    await again.start()
    try:

        async def read_all() -> bool:
            return again.events_seen >= events

        await again.until(read_all)
    finally:
        await again.close()

    assert await runtime.pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
    assert len(received(receiver)) == 1


async def test_a_sleeping_scheduler_hears_of_new_webhooks_and_deliveries(
    runtime: Runtime, fast: Settings, api: Client, receiver: CountingServer
) -> None:
    # Polls an hour apart, listening or not: only notifications wake the delivery loop and renew what the events
    # consumer knows of the tenants' webhooks (read once, with none, for the first execution's events).
    wakeups = Wakeups(fast.database_url, fallback_seconds=3600)
    scheduler = Scheduler(runtime, msgspec.structs.replace(fast, webhook_poll_interval_seconds=3600), wakeups)
    async with listening(wakeups):
        await scheduler.start()
        sending = asyncio.create_task(scheduler.loop.start())
        try:
            await run(runtime, fast, "demo.unheard")
            events = await runtime.pool.fetchval("SELECT count(*) FROM execution_events")

            def consumed(check: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
                async def step() -> bool:
                    await scheduler.consumer.poll_once()
                    return await check()

                return step

            async def all_read() -> bool:
                return scheduler.events_seen >= events

            await eventually(consumed(all_read), 60)
            webhook = await create_webhook(api, f"{receiver.url}/ok")
            assert (await api.post(f"webhooks/{webhook['id']}/test")).status_code == 202
            await eventually(count(receiver, 1), 60)  # the api's delivery woke the sleeping loop
            execution_id = await run(runtime, fast, "demo.heard")
            await eventually(consumed(count(receiver, 2)), 60)
        finally:
            await scheduler.loop.close()
            await sending
            await scheduler.close()

    (_, test_body), (_, body) = received(receiver)
    assert json.loads(test_body)["type"] == "webhook.test"
    assert json.loads(body)["data"]["executionId"] == execution_id


async def test_a_failed_answer_is_retried_with_the_same_webhook_id(
    runtime: Runtime, fast: Settings, api: Client, scheduler: Scheduler, receiver: CountingServer
) -> None:
    webhook = await create_webhook(api, f"{receiver.url}/flaky/1")
    await run(runtime, fast, "demo.flaky")

    await scheduler.until(count(receiver, 2))

    (first, first_body), (second, second_body) = received(receiver)
    assert first["webhook-id"] == second["webhook-id"] and first_body == second_body
    for headers, body in ((first, first_body), (second, second_body)):
        standardwebhooks.Webhook(webhook["secret"]).verify(body, headers)
    [delivery] = (await api.get(f"webhooks/{webhook['id']}/deliveries")).json()["items"]
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2
    assert scheduler.sample("flowline_webhook_deliveries_total", outcome="retrying") == 1
    assert scheduler.sample("flowline_webhook_delivery_attempts_total", result="http_error") == 1


async def test_webhooks_get_only_the_events_and_workflows_they_name_in_order(
    runtime: Runtime, fast: Settings, api: Client, scheduler: Scheduler, receiver: CountingServer
) -> None:
    await create_webhook(api, f"{receiver.url}/ok/tasks", events=["TASK_COMPLETED"], workflows=["demo.first"])
    await create_webhook(api, f"{receiver.url}/ok/ends", events=["WORKFLOW_COMPLETED"], workflows=["demo.second"])
    # Each delivery's first attempt fails: an execution's later events wait for it, so they still come in order.
    await create_webhook(
        api, f"{receiver.url}/flaky/1", events=["WORKFLOW_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED"]
    )
    first = await run(runtime, fast, "demo.first")
    second = await run(runtime, fast, "demo.second")

    await scheduler.until(count(receiver, 1, "/ok/tasks"))
    await scheduler.until(count(receiver, 1, "/ok/ends"))
    await scheduler.until(count(receiver, 2 * 6, "/flaky"))

    def seen(prefix: str) -> list[tuple[str, str]]:
        return [
            (json.loads(body)["data"]["executionId"], json.loads(body)["type"])
            for _headers, body in received(receiver, prefix)
        ]

    assert seen("/ok/tasks") == [(first, "TASK_COMPLETED")]
    assert seen("/ok/ends") == [(second, "WORKFLOW_COMPLETED")]
    for execution in (first, second):
        got = [event for execution_id, event in seen("/flaky") if execution_id == execution]
        assert got == [event for event in ("WORKFLOW_STARTED", "TASK_COMPLETED", "WORKFLOW_COMPLETED") for _ in "12"]


async def test_during_a_rotation_both_secrets_sign(
    runtime: Runtime, api: Client, scheduler: Scheduler, receiver: CountingServer
) -> None:
    webhook = await create_webhook(api, f"{receiver.url}/ok")
    rotated = (await api.post(f"webhooks/{webhook['id']}/rotate-secret")).json()
    assert (await api.post(f"webhooks/{webhook['id']}/test")).status_code == 202

    await scheduler.until(count(receiver, 1))

    [(headers, body)] = received(receiver)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (webhook["secret"], rotated["secret"]):
        payload = standardwebhooks.Webhook(secret).verify(body, headers)
        assert payload["type"] == "webhook.test" and payload["data"]["webhookId"] == webhook["id"]
    await runtime.pool.execute("UPDATE webhooks SET previous_secret_expires_at = now()")  # the rotation ends
    await api.post(f"webhooks/{webhook['id']}/test")
    await scheduler.until(count(receiver, 2))
    headers, body = received(receiver)[1]
    assert " " not in headers["webhook-signature"]
    standardwebhooks.Webhook(rotated["secret"]).verify(body, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(webhook["secret"]).verify(body, headers)


async def test_a_receiver_down_for_a_while_gets_everything_once_back(
    runtime: Runtime, fast: Settings, api: Client, scheduler: Scheduler
) -> None:
    port = free_port()
    webhook = await create_webhook(api, f"http://127.0.0.1:{port}/ok")
    executions = {await run(runtime, fast, "demo.down", n=n) for n in range(3)}

    async def all_tried_twice() -> bool:
        tried = await runtime.pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE attempts >= 2")
        return bool(tried == 3)

    await scheduler.until(all_tried_twice)
    log = (await api.get(f"webhooks/{webhook['id']}/deliveries", params={"status": "pending"})).json()
    assert log["total"] == 3
    for delivery in log["items"]:
        assert delivery["attempts"] >= 2 and delivery["lastStatusCode"] is None
        assert "ClientConnectorError" in delivery["lastError"] and delivery["nextAttemptAt"] is not None
    receiver = CountingServer(port)
    try:
        await scheduler.until(count(receiver, 3))
        got = [json.loads(body)["data"]["executionId"] for _headers, body in received(receiver)]
        assert sorted(got) == sorted(executions)
        ids = {headers["webhook-id"] for headers, _body in received(receiver)}
        assert len(ids) == 3
    finally:
        receiver.close()
    succeeded = (await api.get(f"webhooks/{webhook['id']}/deliveries", params={"status": "succeeded"})).json()
    assert succeeded["total"] == 3


async def test_a_delivery_out_of_attempts_fails_and_a_webhook_failing_long_is_disabled(
    runtime: Runtime, fast: Settings, api: Client, receiver: CountingServer
) -> None:
    brief = msgspec.structs.replace(fast, webhook_retry_schedule_seconds="0.2,0.2", webhook_disable_after_seconds=0.3)
    scheduler = Scheduler(runtime, brief)
    webhook = await create_webhook(api, f"{receiver.url}/status/500")
    await api.post(f"webhooks/{webhook['id']}/test")
    try:

        async def finished() -> bool:
            return bool(await runtime.pool.fetchval("SELECT status = 'failed' FROM webhook_deliveries"))

        await scheduler.until(finished)
    finally:
        await scheduler.close()

    [delivery] = (await api.get(f"webhooks/{webhook['id']}/deliveries")).json()["items"]
    assert delivery["attempts"] == 3 and delivery["lastStatusCode"] == 500
    assert delivery["lastError"].startswith(f"POST {receiver.url}/status/500 answered 500")
    assert len(received(receiver)) == 3
    disabled = (await api.get(f"webhooks/{webhook['id']}")).json()
    assert disabled["enabled"] is False and "every delivery failed" in disabled["disabledReason"]
    assert scheduler.sample("flowline_webhook_deliveries_total", outcome="failed") == 1
    assert scheduler.sample("flowline_webhooks_disabled_total") == 1


async def test_the_outbound_policy_is_checked_at_every_delivery(
    runtime: Runtime, fast: Settings, api: Client, receiver: CountingServer
) -> None:
    webhook = await create_webhook(api, f"{receiver.url}/ok")  # allowed when it was made
    strict = Scheduler(runtime, msgspec.structs.replace(fast, outbound_allowed_networks=""))
    await api.post(f"webhooks/{webhook['id']}/test")
    try:

        async def tried() -> bool:
            return bool(await runtime.pool.fetchval("SELECT attempts > 0 FROM webhook_deliveries"))

        await strict.until(tried)
    finally:
        await strict.close()

    [delivery] = (await api.get(f"webhooks/{webhook['id']}/deliveries")).json()["items"]
    assert delivery["status"] == "pending" and "loopback" in delivery["lastError"]
    assert received(receiver) == []
    assert strict.sample("flowline_webhook_delivery_attempts_total", result="refused") == 1


async def test_retention_forgets_old_settled_deliveries_and_keeps_pending_ones(runtime: Runtime, api: Client) -> None:
    webhook = await create_webhook(api, "https://hooks.example.com/x")
    for _ in range(4):
        assert (await api.post(f"webhooks/{webhook['id']}/test")).status_code == 202
    ids = [row["id"] for row in await runtime.pool.fetch("SELECT id FROM webhook_deliveries ORDER BY id")]
    statuses = ["succeeded", "failed", "pending", "succeeded"]
    ages = ["40 days", "40 days", "40 days", "1 day"]
    for delivery_id, status, age in zip(ids, statuses, ages, strict=True):
        await runtime.pool.execute(
            f"UPDATE webhook_deliveries SET status = $2, created_at = now() - interval '{age}' WHERE id = $1",
            delivery_id,
            status,
        )

    await DeliveryRetention(runtime.pool, retention_seconds=30 * 86400, interval_seconds=60).start(loops=1)

    kept = [row["id"] for row in await runtime.pool.fetch("SELECT id FROM webhook_deliveries ORDER BY id")]
    assert kept == [ids[2], ids[3]]


async def test_a_slow_receiver_holds_only_its_webhooks_share_of_the_deliveries(
    runtime: Runtime, fast: Settings, api: Client, receiver: CountingServer
) -> None:
    # Room for two deliveries at a time, at most one of them per webhook; time enough for a receiver to hold one.
    settings = msgspec.structs.replace(
        fast,
        webhook_max_concurrent_deliveries=2,
        webhook_max_in_flight_per_webhook=1,
        webhook_timeout_seconds=120,
    )
    scheduler = Scheduler(runtime, settings)
    await scheduler.start()

    def recorded(total: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            await scheduler.consumer.poll_once()
            return bool(await runtime.pool.fetchval("SELECT count(*) FROM webhook_deliveries") == total)

        return check

    sending: asyncio.Task[None] | None = None
    try:
        held = await create_webhook(api, f"{receiver.url}/hold")
        for n in range(2):  # the holding receiver's deliveries come first, each of its own execution
            await run(runtime, settings, "demo.crowd", n=n)
        await eventually(recorded(2), 60)
        answered = await create_webhook(api, f"{receiver.url}/ok")
        await run(runtime, settings, "demo.crowd", n=2)
        await eventually(recorded(4), 60)
        sending = asyncio.create_task(scheduler.loop.start())

        await eventually(count(receiver, 1, "/ok"), 60)
        assert len(received(receiver, "/hold")) == 1  # it holds its one delivery, and was given no other
        receiver.release()
        await eventually(count(receiver, 3, "/hold"), 60)
    finally:
        receiver.release()
        scheduler.loop.stop()
        if sending is not None:
            await sending
        await scheduler.loop.drain()
        await scheduler.close()

    assert len({headers["webhook-id"] for headers, _body in received(receiver, "/hold")}) == 3
    for webhook, total in ((held, 3), (answered, 1)):
        log = (await api.get(f"webhooks/{webhook['id']}/deliveries", params={"status": "succeeded"})).json()
        assert log["total"] == total


def scans(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Every scan of ``webhook_deliveries`` or its indexes in a JSON plan, as (node type, index name)."""
    found = []
    if plan.get("Relation Name") == "webhook_deliveries" or "webhook_deliveries" in plan.get("Index Name", ""):
        found.append((plan["Node Type"], plan.get("Index Name")))
    for child in plan.get("Plans", ()):
        found += scans(child)
    return found


async def explained_claim(runtime: Runtime) -> list[tuple[str, str | None]]:
    """The scans of ``webhook_deliveries`` in the plan of a claim of 50 (EXPLAIN only: nothing is claimed)."""

    class Explaining:
        async def fetch(self, query: str, *args: Any) -> list[Any]:
            [plan] = await runtime.pool.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
            plans.append(plan["Plan"])
            return []

    plans: list[dict[str, Any]] = []
    await claim_due_deliveries(Explaining(), 50, 40.0, per_webhook=10)  # type: ignore[arg-type]
    return scans(plans[0])


async def test_the_claim_reads_the_due_index_in_order_whatever_the_statistics_say(
    runtime: Runtime, api: Client
) -> None:
    # Statistics are of a moment: the queue is analyzed while nearly empty, or while everything in it is due.
    # Either way a claim reads the due index (its head in order, or at worst every due row), probes single rows,
    # and never reads the table through: most of its rows are settled deliveries kept for the delivery log.
    webhook = await create_webhook(api, "https://hooks.example.com/x")
    fill = (
        "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_type, execution_id, sequence, payload, "
        "status, next_attempt_at, event_at) SELECT gen_random_uuid(), w.id, w.tenant_id, 'WORKFLOW_COMPLETED', "
        "gen_random_uuid(), 1, '{}', $2, CASE WHEN $2 = 'pending' THEN now() END, now() "
        "FROM webhooks w, generate_series(1, $3) WHERE w.id = $1"
    )
    webhook_id = uuid.UUID(webhook["id"])
    await runtime.pool.execute("ANALYZE webhook_deliveries")
    await runtime.pool.execute(fill, webhook_id, "succeeded", 20_000)
    await runtime.pool.execute(fill, webhook_id, "pending", 2_000)
    analyzed_empty = await explained_claim(runtime)
    await runtime.pool.execute("DELETE FROM webhook_deliveries WHERE status = 'succeeded'")
    await runtime.pool.execute("ANALYZE webhook_deliveries")
    await runtime.pool.execute("UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL")
    await runtime.pool.execute(fill, webhook_id, "pending", 50)
    analyzed_all_due = await explained_claim(runtime)

    for plan in (analyzed_empty, analyzed_all_due):
        assert ("Seq Scan", None) not in plan, plan
        assert {index for _node, index in plan} >= {
            "ix_webhook_deliveries_due",
            "uq_webhook_deliveries_webhook_id_execution_id_sequence",
        }, plan
    assert ("Index Scan", "ix_webhook_deliveries_due") in analyzed_all_due  # in order, up to the limit
