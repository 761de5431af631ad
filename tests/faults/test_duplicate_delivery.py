"""Every message on the tasks topic delivered twice: the database ends as a clean run leaves it.

The same executions run twice, each in a stack and database of their own: once as they are, once while a
duplicator publishes every record of the tasks topic a second time as it appears. With eager dispatch off,
every step attempt goes through that topic, so each one is claimed from a message that arrives twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from flowline.settings import Settings, load_settings
from flowline_devstack.processes import ServiceGroup

from tests.ports import free_port
from tests.support import CountingServer, api_key, bearer

EXECUTIONS = 30
# Marks the duplicator's copies, so that it does not copy them again.
COPY_HEADER = "x-test-duplicate"
# Values that differ between any two runs: timestamps and the HTTP Date header.
VOLATILE_KEYS = frozenset({"date", "firedAt", "retryAt"})
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _workflow(server_url: str) -> dict[str, Any]:
    """Parallel branches, a skipped step (``when``), an http step that fails once then succeeds, a sleep."""
    return {
        "ref": "faults.branches",
        "definition": {
            "steps": [
                {"id": "start", "type": "action", "action": "core.echo", "input": {"n": "{{ input.n }}"}},
                {
                    "id": "left",
                    "type": "action",
                    "action": "core.echo",
                    "needs": ["start"],
                    "input": "{{ input.n * 2 }}",
                },
                {
                    "id": "right",
                    "type": "http",
                    "needs": ["start"],
                    "request": {"method": "POST", "url": f"{server_url}/flaky/1", "body": {"n": "{{ input.n }}"}},
                    "retry": {"maxAttempts": 3, "backoff": "fixed", "initialInterval": 0.1, "jitter": False},
                },
                {"id": "nap", "type": "sleep", "duration": "200ms", "needs": ["start"]},
                {
                    "id": "odd",
                    "type": "action",
                    "action": "core.echo",
                    "needs": ["left"],
                    "when": "{{ input.n % 2 == 1 }}",
                    "input": "odd {{ input.n }}",
                },
                {
                    "id": "join",
                    "type": "action",
                    "action": "core.echo",
                    "needs": ["left", "right", "nap", "odd"],
                    "input": {
                        "left": "{{ steps.left.output }}",
                        "right": "{{ steps.right.output.body.got }}",
                        "odd": "{{ steps.odd.status }}",
                    },
                },
            ],
            "output": "{{ steps.join.output }}",
        },
    }


@pytest.fixture
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    # Every attempt through the tasks topic, none run in place by the executor that made the step ready.
    return {**stack_env, "FLOWLINE_EAGER_DISPATCH": "false"}


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
async def duplicated_env(stack_env: dict[str, str], template_database: str) -> AsyncIterator[dict[str, str]]:
    """A second stack's environment: a fresh database, its own topics, groups and ports, same settings."""
    name = f"flowline_test_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(stack_env["FLOWLINE_DATABASE_URL"])
    await _admin(urlunsplit(parts), f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield {
        **stack_env,
        "FLOWLINE_DATABASE_URL": urlunsplit(parts._replace(path=f"/{name}")),
        "FLOWLINE_TOPIC_PREFIX": prefix,
        "FLOWLINE_CONSUMER_GROUP_PREFIX": prefix,
        "FLOWLINE_API_PORT": str(free_port()),
        "FLOWLINE_EXECUTOR_HTTP_PORT": str(free_port()),
        "FLOWLINE_SCHEDULER_HTTP_PORT": str(free_port()),
        "FLOWLINE_LOG_INGEST_HTTP_PORT": str(free_port()),
    }
    await _admin(urlunsplit(parts), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def log_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """Where each run's services write their output."""
    (clean := tmp_path / "clean").mkdir()
    (duplicated := tmp_path / "duplicated").mkdir()
    return clean, duplicated


@pytest.fixture
def http_server() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


class Duplicator:
    """Publishes every record of a topic a second time, to the same partition, as it appears."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.republished = 0
        self._copied_up_to: dict[int, int] = {}  # each partition's offset after the last copy
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.consumer_group("test-duplicator"),
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Join the group and start copying; returns once the topic's partitions are assigned."""
        await self._producer.start()
        await self._consumer.start()
        self._task = asyncio.create_task(self._copy())
        async with asyncio.timeout(30):
            while not self._consumer.assignment():
                await asyncio.sleep(0.05)

    async def _copy(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    if any(name == COPY_HEADER for name, _ in record.headers):
                        continue
                    copy = await self._producer.send_and_wait(
                        record.topic,
                        record.value,
                        key=record.key,
                        partition=record.partition,
                        headers=[*record.headers, (COPY_HEADER, b"1")],
                    )
                    self._copied_up_to[copy.partition] = copy.offset + 1
                    self.republished += 1

    async def end_offsets(self) -> dict[int, int]:
        """Each partition's end, once this duplicator has read up to it, its own later copies included.

        Not the broker's answer to ListOffsets: Tansu answers it with the last batch's first offset plus one.
        """
        partitions = self._consumer.assignment()
        async with asyncio.timeout(30):
            while not all(
                [
                    (highwater := self._consumer.highwater(tp)) is not None
                    and await self._consumer.position(tp) >= highwater
                    for tp in partitions
                ]
            ):
                await asyncio.sleep(0.05)
        return {
            tp.partition: max(self._consumer.highwater(tp) or 0, self._copied_up_to.get(tp.partition, 0))
            for tp in partitions
        }

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()
        await self._producer.stop()


async def _wait_until_consumed(settings: Settings, group: str, end: dict[int, int]) -> None:
    """Wait until ``group`` committed the tasks topic up to ``end`` (read without joining the group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topics.tasks, partition) for partition in end]
        consumer.assign(partitions)
        while (committed := {tp.partition: await consumer.committed(tp) or 0 for tp in partitions}) != end:
            assert all(committed[partition] <= offset for partition, offset in end.items()), (committed, end)
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()


def _normalise(value: Any) -> Any:
    """``value`` without what differs between any two runs: ids, timestamps, Date headers."""
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    if isinstance(value, str):
        return TIMESTAMP.sub("<timestamp>", UUID.sub("<uuid>", value))
    return value


async def _snapshot(database_url: str) -> dict[str, Any]:
    """The database's state per execution (keyed by its input), normalised."""
    connection = await asyncpg.connect(database_url)
    try:
        for type_name in ("json", "jsonb"):
            await connection.set_type_codec(
                type_name, encoder=msgspec.json.encode, decoder=msgspec.json.decode, schema="pg_catalog"
            )
        executions = await connection.fetch("SELECT id, input, status, output, error FROM executions")
        steps = await connection.fetch(
            "SELECT id, execution_id, step_id, status, attempts, generation, output, error FROM step_executions"
        )
        attempts = await connection.fetch(
            "SELECT step_execution_id, generation, number, status, error FROM task_attempts ORDER BY generation, number"
        )
        events = await connection.fetch(
            "SELECT execution_id, step_id, event_type FROM execution_events ORDER BY execution_id, sequence"
        )
        timers = await connection.fetch("SELECT execution_id, step_execution_id, kind, status FROM timers")
    finally:
        await connection.close()

    step_ids = {step["id"]: step["step_id"] for step in steps}
    attempts_by_step: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for attempt in attempts:
        attempts_by_step[attempt["step_execution_id"]].append(
            (attempt["generation"], attempt["number"], attempt["status"], _normalise(attempt["error"]))
        )
    # Per step, its events in order. Across parallel branches the order interleaves by timing even in a
    # clean run, so the execution's own events (no step) and each step's are compared as separate sequences.
    events_by_step: dict[tuple[uuid.UUID, str | None], list[str]] = defaultdict(list)
    for event in events:
        events_by_step[(event["execution_id"], event["step_id"])].append(event["event_type"])
    timers_by_execution: dict[uuid.UUID, list[tuple[str | None, str, str]]] = defaultdict(list)
    for timer in timers:
        timers_by_execution[timer["execution_id"]].append(
            (step_ids.get(timer["step_execution_id"]), timer["kind"], timer["status"])
        )
    steps_by_execution: dict[uuid.UUID, dict[str, Any]] = defaultdict(dict)
    for step in steps:
        steps_by_execution[step["execution_id"]][step["step_id"]] = {
            "status": step["status"],
            "attempts": step["attempts"],
            "generation": step["generation"],
            "output": _normalise(step["output"]),
            "error": _normalise(step["error"]),
            "attempt rows": attempts_by_step[step["id"]],
            "events": events_by_step[(step["execution_id"], step["step_id"])],
        }
    by_input = {
        msgspec.json.encode(execution["input"]).decode(): {
            "status": execution["status"],
            "output": _normalise(execution["output"]),
            "error": _normalise(execution["error"]),
            "events": events_by_step[(execution["id"], None)],
            "timers": sorted(timers_by_execution[execution["id"]], key=repr),
            "steps": steps_by_execution[execution["id"]],
        }
        for execution in executions
    }
    assert len(by_input) == len(executions), "two executions with one input"
    return {
        "executions": by_input,
        "attempts by status": dict(Counter(attempt["status"] for attempt in attempts)),
        "events by type": dict(Counter(event["event_type"] for event in events)),
    }


def _differences(clean: dict[str, Any], duplicated: dict[str, Any]) -> str:
    """What differs, readably: the totals, then the first differing execution step by step."""
    lines = [
        f"{key}: clean {clean[key]} != duplicated {duplicated[key]}" for key in clean if clean[key] != duplicated[key]
    ]
    for execution_input, execution in clean["executions"].items():
        other = duplicated["executions"].get(execution_input)
        if other != execution:
            lines.append(f"execution {execution_input}:")
            if other is None:
                lines.append("  missing in the duplicated run")
                break
            for field, value in execution.items():
                if field != "steps" and other[field] != value:
                    lines.append(f"  {field}: clean {value} != duplicated {other[field]}")
            for step_id, step in execution["steps"].items():
                if other["steps"].get(step_id) != step:
                    lines.append(f"  step {step_id}: clean {step} != duplicated {other['steps'].get(step_id)}")
            break
    return "\n".join(lines)


async def _create_pack(client: httpx.AsyncClient, ref: str) -> None:
    """Create the workflow's pack where packs are a resource (404/405: not yet, workflows need none)."""
    created = await client.post("/packs", json={"ref": ref})
    assert created.status_code in (201, 404, 405), created.text


async def _run(env: dict[str, str], log_dir: Path, server: CountingServer, *, duplicate: bool) -> dict[str, Any]:
    """Run the executions in a stack of their own; the database's snapshot once all of them finished."""
    settings = load_settings(env)
    group = ServiceGroup(env, log_dir=log_dir)
    await asyncio.to_thread(group.start)
    duplicator = Duplicator(settings, settings.topics.tasks) if duplicate else None
    try:
        if duplicator is not None:
            await duplicator.start()
        headers = bearer(await api_key(settings.database_url))
        base_url = f"{group['api'].url}/api/v1/tenants/dev"
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            await _create_pack(client, "faults")
            defined = await client.post("/workflows", json=_workflow(server.url))
            assert defined.status_code == 201, defined.text
            accepted = await asyncio.gather(
                *(
                    client.post("/workflows/faults.branches/execute", json={"input": {"n": n}})
                    for n in range(EXECUTIONS)
                )
            )
        assert all(response.status_code == 202 for response in accepted)

        connection = await asyncpg.connect(settings.database_url)
        try:
            async with asyncio.timeout(60):
                while (
                    await connection.fetchval(
                        "SELECT count(*) FROM executions WHERE status IN ('completed', 'failed', 'cancelled')"
                    )
                    < EXECUTIONS
                ):
                    await asyncio.sleep(0.1)
            dispatched = await connection.fetchval(
                "SELECT count(*) FROM execution_events WHERE event_type = 'TASK_CREATED'"
            )
        finally:
            await connection.close()

        if duplicator is not None:
            # Every dispatch was copied, and the executor has consumed the copies too (its committed offsets
            # reached the end of the topic) before the database is read.
            async with asyncio.timeout(30):
                while duplicator.republished < dispatched:
                    await asyncio.sleep(0.05)
                end = await duplicator.end_offsets()
                await _wait_until_consumed(settings, settings.consumer_group("executor-tasks"), end)
            print(
                f"\nduplicator: {dispatched} tasks dispatched, {duplicator.republished} records published again; "
                f"tasks topic end offsets {end}"
            )
            assert duplicator.republished >= dispatched > 0
        return await _snapshot(settings.database_url)
    finally:
        if duplicator is not None:
            await duplicator.stop()
        await asyncio.to_thread(group.stop)


async def test_tasks_delivered_twice_leave_the_database_as_a_clean_run(
    stack_env: dict[str, str],
    duplicated_env: dict[str, str],
    log_dirs: tuple[Path, Path],
    http_server: CountingServer,
) -> None:
    clean = await _run(stack_env, log_dirs[0], http_server, duplicate=False)
    duplicated = await _run(duplicated_env, log_dirs[1], http_server, duplicate=True)

    executions = clean["executions"]
    assert len(executions) == EXECUTIONS
    assert {execution["status"] for execution in executions.values()} == {"completed"}
    # The run exercised what it is meant to: a retry on every execution, a skipped step on half of them.
    assert clean["attempts by status"] == {"failed": EXECUTIONS, "completed": EXECUTIONS * 4 + EXECUTIONS // 2}
    assert clean["events by type"]["TASK_SKIPPED"] == EXECUTIONS // 2
    assert duplicated == clean, _differences(clean, duplicated)
