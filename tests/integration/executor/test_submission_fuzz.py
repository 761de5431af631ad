"""A fuzz pass over the submissions topic, the one other systems produce to (beside the api's, test_fuzz.py).

Random and adversarial bytes, deep nesting, huge sizes, wrong types and out-of-range values, from a seeded
generator (the same messages on every run), go to the topic the executor consumes, spread over its partitions;
then a valid submission goes to every partition. The consumer must move on past all of it: each valid submission
completes, everything that does not decode is on the dead-letter topic, everything that decodes but cannot start
is answered with SubmissionRejected, and nothing else in the database changed.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from flowline.domain.actions import load_actions
from flowline.messages import (
    CancelExecution,
    EventMessage,
    ExecutionRequested,
    SubmissionMessage,
    SubmissionRejected,
    TaskDispatched,
    TaskLogBatch,
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

SEED = 20261207
WORKFLOW = "fuzz.echo"  # the one workflow that exists: junk names it only with a defect that keeps it from starting
ECHO = {"steps": [{"id": "echo", "type": "action", "action": "core.echo", "input": "{{ input }}"}], "output": "ok"}
TEXT = "ab Z09_-.:/\\\"'{}[]\x00\x01\x1f\x7fé漢🙂\u2028\ufeff"
MESSAGE_TYPES = [
    "SubmitExecution",
    "CancelSubmission",
    "ExecutionRequested",
    "CancelExecution",
    "TaskDispatched",
    "Event",
    "",
    "x" * 300,
]
# Rows the junk must leave as they were (the inbox keeps the ids of rejected submissions, by design).
TABLES = (
    "tenants",
    "api_keys",
    "packs",
    "workflows",
    "workflow_versions",
    "executions",
    "step_executions",
    "task_attempts",
    "timers",
    "promises",
    "execution_events",
    "task_logs",
    "audit_logs",
)


class Junk:
    """The seeded generator of everything a careless or hostile producer might write."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self, longest: int = 40) -> str:
        return "".join(self.rng.choice(TEXT) for _ in range(self.rng.randint(0, longest)))

    def number(self) -> int | float:
        extremes: list[int | float] = [0, -1, 2**31, 2**63, -(2**63) - 1, 2**64, 10**30, 1e308, -1e-308, -0.0, 0.5]
        return self.rng.choice([*extremes, self.rng.randint(-(10**6), 10**6)])

    def value(self, depth: int = 0) -> Any:
        """Any JSON value: scalars of every kind, and containers up to a few levels deep."""
        kind = self.rng.choice(["null", "bool", "number", "text"] + (["list", "object"] if depth < 4 else []))
        match kind:
            case "null":
                return None
            case "bool":
                return self.rng.random() < 0.5
            case "number":
                return self.number()
            case "text":
                return self.text()
            case "list":
                return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.text(8): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def submission(self, **fields: Any) -> dict[str, Any]:
        """A well-formed submission of a workflow that does not exist (so that it can never start)."""
        body = {"type": "SubmitExecution", "schema_version": 1, "id": str(uuid.uuid4()), "tenant": "dev"}
        return body | {"workflow": "fuzz.absent", "input": {"n": 1}, "idempotency_key": f"junk-{uuid.uuid4()}"} | fields

    def mutated(self) -> bytes:
        """A submission with one to three fields replaced by random values, removed, or added."""
        body = self.submission()
        for _ in range(self.rng.randint(1, 3)):
            field = self.rng.choice([*body, "version", "metadata", "tags", "occurred_at", "unknown"])
            action = self.rng.choice(["replace", "remove", "replace"])
            if action == "remove":
                body.pop(field, None)
            elif field == "type":
                body[field] = self.rng.choice(MESSAGE_TYPES)
            elif field == "workflow":
                body[field] = self.value()  # never the existing workflow: its ref has no random characters
            else:
                body[field] = self.value()
        return json.dumps(body).encode()

    def bytes_(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([0, 1, 7, 100, 5_000, 200_000]))

    def document(self) -> bytes:
        """A JSON document that is not a submission: a scalar, a list, or an object of random fields."""
        value = self.value()
        if isinstance(value, dict) and self.rng.random() < 0.5:
            value["type"] = self.rng.choice(MESSAGE_TYPES)
        return json.dumps(value).encode()

    def nested(self) -> bytes:
        depth = self.rng.choice([50, 200, 2_000, 100_000])
        if self.rng.random() < 0.5:
            return b"[" * depth + b"]" * depth
        inner = '{"a":' * depth + "1" + "}" * depth
        return json.dumps(self.submission()).replace('{"n": 1}', inner).encode()

    def huge(self) -> bytes:
        """Sizes past the bounds (dead-lettered at decoding) or merely large (rejected: no such workflow)."""
        fields = self.rng.choice(
            [
                {"input": {"blob": "x" * 700_000}},
                {"tags": [self.text(5) for _ in range(51)]},
                {"tags": ["t" * 3_000]},
                {"metadata": {f"k{n}": "v" for n in range(51)}},
                {"metadata": {"k": "v" * 501}},
                {"idempotency_key": "i" * 201},
                {"tenant": "t" * 100_000},
                {"input": {f"k{n}": n for n in range(20_000)}},
            ]
        )
        return json.dumps(self.submission(**fields)).encode()

    def out_of_range(self) -> bytes:
        """The existing workflow, each time with a defect that keeps it from starting."""
        defect = self.rng.choice(
            [
                {"version": self.rng.choice([0, -1, 2**31, 2**40, 2**63 - 1, 2**64, 999])},
                {"input": {"text": "a\u0000b"}},
                {"input": {self.text(): {"nul": "\u0000"}}},
                {"workflow": WORKFLOW + self.rng.choice(["\u0000", " ", "\u200b", ".", "*", "%"])},
                {"tenant": self.rng.choice(["nobody", "", "DEV", "dev\u0000"])},
            ]
        )
        return json.dumps(self.submission(**{"workflow": WORKFLOW, **defect})).encode()

    def cancel(self) -> bytes:
        """A CancelSubmission of nothing a submission started (``junk-`` keys are never used), or malformed."""
        body = {"type": "CancelSubmission", "schema_version": 1, "id": str(uuid.uuid4())}
        body |= {"tenant": self.rng.choice(["dev", "nobody", self.text()]), "idempotency_key": f"junk-{uuid.uuid4()}"}
        body |= self.rng.choice(
            [{}, {"reason": self.text()}, {"reason": "r" * 2_001}, {"idempotency_key": self.value()}, {"tenant": None}]
        )
        return json.dumps(body).encode()

    def internal(self) -> bytes:
        """Flowline's own messages, which have no business on the submissions topic."""
        ids = {"tenant_id": uuid.uuid4(), "execution_id": uuid.uuid4()}
        message = self.rng.choice(
            [
                ExecutionRequested(**ids),
                CancelExecution(**ids, reason="from outside"),
                TaskDispatched(**ids, step_execution_id=uuid.uuid4(), step_id="a", generation=0, attempt=1),
                TaskLogBatch(**ids, records=[]),
            ]
        )
        return encode(message)

    def messages(self, count: int) -> list[bytes]:
        makers: list[Callable[[], bytes]] = [
            self.mutated,
            self.mutated,
            self.mutated,
            self.bytes_,
            self.document,
            self.nested,
            self.huge,
            self.out_of_range,
            self.cancel,
            self.internal,
        ]
        return [self.rng.choice(makers)() for _ in range(count)]


def _decodes(value: bytes) -> SubmissionMessage | None:
    """The submission ``value`` decodes to on the submissions topic, or None when it does not decode."""
    try:
        return decoder(SubmissionMessage).decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


async def _rows(runtime: Runtime, excluding: list[uuid.UUID]) -> dict[str, int]:
    """How many rows each table holds, leaving out those of the executions ``excluding``."""
    counts = {}
    for table in TABLES:
        column = {"executions": "id"}.get(table, "execution_id")
        has_column = await runtime.pool.fetchval(
            "SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_name = $1 AND column_name = $2)",
            table,
            column,
        )
        where = f"WHERE {column} <> ALL($1::uuid[])" if has_column else "WHERE $1::uuid[] IS NOT NULL"
        counts[table] = await runtime.pool.fetchval(f"SELECT count(*) FROM {table} {where}", excluding)
    return counts


async def test_junk_on_the_submissions_topic_is_refused_and_the_consumer_moves_on(
    runtime: Runtime, settings: Settings
) -> None:
    await define_and_start(runtime.pool, settings, WORKFLOW, ECHO, {})
    junk = Junk(SEED).messages(160)
    before = await _rows(runtime, [])
    topic = settings.topics.submissions
    rng = random.Random(SEED)
    for value in junk:  # spread over the partitions by random keys (some with none)
        key = rng.choice([None, rng.randbytes(rng.randint(1, 40))])
        await runtime.producer.send_and_wait(topic, value, key=key)
    partitions = sorted(await runtime.producer.partitions_for(topic))
    valid = {f"valid-{partition}": partition for partition in partitions}
    for key, partition in valid.items():
        body = {"type": "SubmitExecution", "id": str(uuid.uuid4()), "tenant": "dev", "workflow": WORKFLOW}
        value = json.dumps(body | {"input": {"n": partition}, "idempotency_key": key}).encode()
        await runtime.producer.send_and_wait(topic, value, partition=partition)

    undecodable = [value for value in junk if _decodes(value) is None]
    submitted = {message.id for value in junk if (message := _decodes(value)) is not None}
    assert undecodable and submitted  # the generator makes both kinds

    engine = Engine(settings, runtime.pool, runtime.outbox, load_actions(), ExecutorMetrics(CollectorRegistry()))
    consumer = commands_consumer(runtime, engine, name="test-fuzz")
    await consumer.start()
    consuming = asyncio.create_task(consumer.run())
    try:

        async def every_valid_one_completed_and_every_submission_applied() -> bool:
            completed = await runtime.pool.fetchval(
                "SELECT count(*) FROM executions WHERE idempotency_key = ANY($1::text[]) AND status = 'completed'",
                list(valid),
            )
            applied = await runtime.pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'executor'")
            return bool(completed == len(valid) and applied == len(submitted) + len(valid))

        await eventually(every_valid_one_completed_and_every_submission_applied, timeout=180)
        dead = await read_topic(settings, settings.topics.dead_letter, len(undecodable), timeout=60)
        rejected = await read_topic(
            settings,
            settings.topics.events,
            len(submitted),
            timeout=60,
            keep=lambda record: b"SubmissionRejected" in record.value,
        )
    finally:
        await consumer.stop()
        await consuming

    assert sorted(record.value for record in dead) == sorted(undecodable)
    assert {dict(record.headers)["source-topic"] for record in dead} == {topic.encode()}
    rejections = [decoder(EventMessage).decode(record.value) for record in rejected]
    assert all(isinstance(rejection, SubmissionRejected) for rejection in rejections)
    assert {rejection.submission_id for rejection in rejections} == submitted

    started = await runtime.pool.fetch("SELECT id FROM executions WHERE idempotency_key = ANY($1::text[])", list(valid))
    assert await _rows(runtime, [row["id"] for row in started]) == before
