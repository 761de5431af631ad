"""Invariants 7 and 8: offsets committed after the handler; poison messages dead-lettered, consumer goes on."""

from __future__ import annotations

import json
import uuid
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from flowline.kafka.consumer import MessageConsumer, MessageRefused
from flowline.messages import EventMessage, ExecutionEvent, SubmissionMessage, decoder, encode
from flowline.runtime.ops import check_readiness
from flowline.runtime.request_ids import current_request_id, kafka_headers
from flowline.runtime.service import Runtime
from flowline.settings import Settings

from tests.support import events_consumer, eventually, read_topic


def _event(sequence: int, execution_id: uuid.UUID) -> ExecutionEvent:
    return ExecutionEvent(
        tenant_id=uuid.uuid4(), execution_id=execution_id, sequence=sequence, event="TASK_STARTED", timestamp_ms=1
    )


async def test_poison_messages_are_dead_lettered_and_the_consumer_goes_on(runtime: Runtime, settings: Settings) -> None:
    execution_id = uuid.uuid4()
    key = str(execution_id).encode()
    handled: list[int] = []

    async def handle(message: EventMessage) -> None:
        if message.sequence == 2:
            raise RuntimeError("this message always breaks the handler")
        handled.append(message.sequence)

    breaking = encode(_event(2, execution_id))
    for value in (encode(_event(1, execution_id)), b"{not json", breaking, encode(_event(3, execution_id))):
        await runtime.producer.send_and_wait(settings.topics.events, value, key=key)

    consumer = runtime.consumer("test-consumer", [settings.topics.events], decoder(EventMessage), handler=handle)
    await consumer.start()
    try:

        async def all_handled() -> bool:
            await consumer.poll_once()
            return handled == [1, 3]

        await eventually(all_handled)
    finally:
        await consumer.stop()

    dead = await read_topic(settings, settings.topics.dead_letter, 2)
    headers = [dict(record.headers) for record in dead]
    assert [record.value for record in dead] == [b"{not json", breaking]
    assert all(h["source-topic"] == settings.topics.events.encode() for h in headers)
    assert headers[0]["error"].startswith(b"cannot decode")
    assert b"always breaks" in headers[1]["error"]
    assert [h["source-offset"] for h in headers] == [b"1", b"2"]  # one key: one partition, in order

    # The offsets were committed: the group would start after the last record, poison included. Read from the
    # group's coordinator rather than by joining the group again (a rejoin waits out the old member's session).
    assert await _committed(settings, "test-consumer", settings.topics.events) == 4
    assert handled == [1, 3]


async def test_handled_offsets_are_held_for_the_commit_interval_and_committed_when_the_consumer_stops(
    runtime: Runtime, settings: Settings
) -> None:
    settings = msgspec.structs.replace(settings, consumer_commit_interval_ms=600_000)  # longer than the test
    execution_id = uuid.uuid4()
    handled: list[int] = []

    async def handle(message: EventMessage) -> None:
        handled.append(message.sequence)

    consumer: MessageConsumer[EventMessage] = events_consumer(runtime, settings, "holding-consumer", handle)
    await consumer.start()
    try:
        for sequence in (1, 2):
            await runtime.producer.send_and_wait(
                settings.topics.events, encode(_event(sequence, execution_id)), key=execution_id.bytes
            )

        async def both_handled() -> bool:
            await consumer.poll_once()
            return handled == [1, 2]

        await eventually(both_handled)
        assert await _committed(settings, "holding-consumer", settings.topics.events) == 0  # held, not lost
    finally:
        await consumer.stop()
    assert await _committed(settings, "holding-consumer", settings.topics.events) == 2


async def _committed(settings: Settings, name: str, topic: str) -> int:
    """The sum of the group's committed offsets over the topic's partitions."""
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group(name))
    await reader.start()
    try:
        partitions = [TopicPartition(topic, partition) for partition in reader.partitions_for_topic(topic) or ()]
        return sum([await reader.committed(partition) or 0 for partition in partitions])
    finally:
        await reader.stop()


async def test_a_batch_handler_isolates_the_bad_message(runtime: Runtime, settings: Settings) -> None:
    written: list[int] = []

    async def write(batch: list[EventMessage]) -> None:
        if any(message.sequence == 13 for message in batch):
            raise ValueError("unlucky")
        written.extend(message.sequence for message in batch)

    execution_id = uuid.uuid4()
    for sequence in range(10, 17):
        await runtime.producer.send(
            settings.topics.events, encode(_event(sequence, execution_id)), key=str(execution_id).encode()
        )
    await runtime.producer.flush()
    consumer = runtime.consumer("test-batch", [settings.topics.events], decoder(EventMessage), batch_handler=write)
    await consumer.start()
    try:

        async def done() -> bool:
            await consumer.poll_once()
            return len(written) == 6

        await eventually(done)
    finally:
        await consumer.stop()
    assert sorted(written) == [10, 11, 12, 14, 15, 16]
    [dead] = await read_topic(settings, settings.topics.dead_letter, 1)
    assert decoder(EventMessage).decode(dead.value).sequence == 13


async def test_a_handler_runs_with_the_request_id_its_record_carries(runtime: Runtime, settings: Settings) -> None:
    seen: dict[int, str | None] = {}

    async def handle(message: EventMessage) -> None:
        seen[message.sequence] = current_request_id.get()

    for sequence, headers in ((1, kafka_headers("req-1")), (2, []), (3, kafka_headers("req-3"))):
        # Different keys: the consumer handles them concurrently, each with its own id.
        execution_id = uuid.uuid4()
        await runtime.producer.send_and_wait(
            settings.topics.events, encode(_event(sequence, execution_id)), key=execution_id.bytes, headers=headers
        )
    consumer = runtime.consumer("request-ids", [settings.topics.events], decoder(EventMessage), handler=handle)
    await consumer.start()
    try:

        async def all_handled() -> bool:
            await consumer.poll_once()
            return len(seen) == 3

        await eventually(all_handled)
    finally:
        await consumer.stop()
    assert seen == {1: "req-1", 2: None, 3: "req-3"}
    assert current_request_id.get() is None


async def test_the_lag_gauge_counts_what_waits_behind_the_position(runtime: Runtime, settings: Settings) -> None:
    execution_id = uuid.uuid4()
    for sequence in range(1, 6):
        await runtime.producer.send_and_wait(
            settings.topics.events, encode(_event(sequence, execution_id)), key=str(execution_id).encode()
        )
    handled: list[int] = []

    async def handle(message: EventMessage) -> None:
        handled.append(message.sequence)

    def lag() -> float | None:
        return runtime.registry.get_sample_value(
            "flowline_consumer_lag_messages", {"consumer": "lagging", "topic": settings.topics.events}
        )

    # Two records per poll: the gauge shows the rest of the backlog until the consumer reaches the end.
    consumer = runtime.consumer(
        "lagging", [settings.topics.events], decoder(EventMessage), handler=handle, max_records=2
    )
    await consumer.start()
    seen: list[float | None] = []
    try:

        async def caught_up() -> bool:
            await consumer.poll_once()
            seen.append(lag())
            return handled == [1, 2, 3, 4, 5] and lag() == 0

        await eventually(caught_up)
    finally:
        await consumer.stop()
    assert any(value is not None and value > 0 for value in seen), seen


async def test_a_position_past_the_end_of_a_log_reads_it_from_the_start(runtime: Runtime, settings: Settings) -> None:
    # What a consumer meets once the broker lost its data: its positions lie past its partitions' new ends. Apache
    # Kafka would answer OFFSET_OUT_OF_RANGE; the local broker answers with nothing, and the record would wait forever.
    await _commit_past_the_end(settings, "past-the-end", settings.topics.events)
    execution_id = uuid.uuid4()
    await runtime.producer.send_and_wait(
        settings.topics.events, encode(_event(1, execution_id)), key=str(execution_id).encode()
    )
    handled: list[int] = []

    async def handle(message: EventMessage) -> None:
        if message.execution_id == execution_id:
            handled.append(message.sequence)

    consumer = runtime.consumer("past-the-end", [settings.topics.events], decoder(EventMessage), handler=handle)
    await consumer.start()
    try:

        async def handled_once() -> bool:
            await consumer.poll_once()
            return handled == [1]

        await eventually(handled_once)
    finally:
        await consumer.stop()


async def _commit_past_the_end(settings: Settings, name: str, topic: str) -> None:
    """Commit, for the group, offsets a thousand records past the end of each of the topic's partitions."""
    committer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group(name), enable_auto_commit=False
    )
    await committer.start()
    try:
        partitions = [TopicPartition(topic, partition) for partition in committer.partitions_for_topic(topic) or ()]
        committer.assign(partitions)
        ends = await committer.end_offsets(partitions)
        await committer.commit({partition: end + 1000 for partition, end in ends.items()})
    finally:
        await committer.stop()


async def test_a_runtime_is_ready_once_each_of_its_consumers_has_joined_its_group(
    runtime: Runtime, settings: Settings
) -> None:
    async def ignore(message: EventMessage) -> None:
        pass

    consumer = runtime.consumer("test-readiness", [settings.topics.events], decoder(EventMessage), handler=ignore)
    ready, checks = await check_readiness(runtime.readiness)
    assert not ready
    assert checks["consumers"] == "down: NotJoined"
    assert checks["database"] == checks["kafka"] == "ok"

    await consumer.start()
    try:

        async def joined() -> bool:
            return (await check_readiness(runtime.readiness))[0]

        await eventually(joined)
    finally:
        await consumer.stop()


async def test_what_is_the_messages_fault_is_dead_lettered_and_the_consumer_moves_on(
    runtime: Runtime, settings: Settings
) -> None:
    # A value PostgreSQL cannot take is the message's fault, not an outage to wait out; nesting too deep to
    # decode makes a message undecodable. Either way the partition goes on.
    execution_id = uuid.uuid4()
    key = str(execution_id).encode()
    handled: list[int] = []

    async def handle(message: EventMessage) -> None:
        if message.sequence == 2:
            await runtime.pool.execute("SELECT $1::bigint", 2**70)
        handled.append(message.sequence)

    deep = b'{"type": "Event", "tenantId": "%s", "executionId": "%s", "data": ' % (
        str(uuid.uuid4()).encode(),
        str(execution_id).encode(),
    )
    deep += b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    for value in (
        encode(_event(1, execution_id)),
        deep,
        encode(_event(2, execution_id)),
        encode(_event(3, execution_id)),
    ):
        await runtime.producer.send_and_wait(settings.topics.events, value, key=key)

    consumer = runtime.consumer("test-poison", [settings.topics.events], decoder(EventMessage), handler=handle)
    await consumer.start()
    try:

        async def all_handled() -> bool:
            await consumer.poll_once()
            return handled == [1, 3]

        await eventually(all_handled, timeout=60)
    finally:
        await consumer.stop()

    dead = await read_topic(settings, settings.topics.dead_letter, 2)
    errors = [dict(record.headers)["error"] for record in dead]
    assert errors[0].startswith(b"cannot decode: ") and b"recursion" in errors[0]
    assert errors[1].startswith(b"DataError: ")


async def test_a_submission_past_a_bound_is_dead_lettered_and_the_next_one_is_handled(
    runtime: Runtime, settings: Settings
) -> None:
    """A 3 KB tag (once a 500 at the index row) fails the decoder's validation: dead-lettered, not retried."""

    def submission(**fields: Any) -> bytes:
        return json.dumps(
            {"type": "SubmitExecution", "id": str(uuid.uuid4()), "tenant": "dev", "workflow": "demo.hello", **fields}
        ).encode()

    handled: list[SubmissionMessage] = []

    async def handle(message: SubmissionMessage) -> None:
        handled.append(message)

    oversized = submission(tags=["t" * 3000], idempotency_key="bad")
    for value in (oversized, submission(tags=["fine"], idempotency_key="good")):
        await runtime.producer.send_and_wait(settings.topics.submissions, value, key=b"same")
    topics = [settings.topics.submissions]
    consumer = runtime.consumer("test-submissions", topics, decoder(SubmissionMessage), handler=handle)
    await consumer.start()
    try:

        async def good_handled() -> bool:
            await consumer.poll_once()
            return bool(handled)

        await eventually(good_handled)
    finally:
        await consumer.stop()

    assert [(message.idempotency_key, message.tags) for message in handled] == [("good", ["fine"])]
    [dead] = await read_topic(settings, settings.topics.dead_letter, 1)
    assert dead.value == oversized
    assert dict(dead.headers)["error"].startswith(b"cannot decode") and b"$.tags[0]" in dict(dead.headers)["error"]


async def test_a_refused_message_is_dead_lettered_at_once_and_a_batch_refuses_only_it(
    runtime: Runtime, settings: Settings
) -> None:
    """A handler's MessageRefused (a row of another tenant) is no failure to retry: dead-lettered on the first."""
    execution_id = uuid.uuid4()
    calls: list[int] = []
    stored: list[int] = []

    async def handle(message: EventMessage) -> None:
        calls.append(message.sequence)
        if message.sequence == 2:
            raise MessageRefused("names another tenant's execution")

    async def handle_batch(messages: list[EventMessage]) -> None:
        if any(message.sequence == 2 for message in messages):
            raise MessageRefused("names another tenant's execution")
        stored.extend(message.sequence for message in messages)

    for sequence in (1, 2, 3):
        await runtime.producer.send_and_wait(
            settings.topics.events, encode(_event(sequence, execution_id)), key=str(execution_id).encode()
        )
    one_by_one = runtime.consumer("test-refused", [settings.topics.events], decoder(EventMessage), handler=handle)
    batches = runtime.consumer(
        "test-refused-batch", [settings.topics.events], decoder(EventMessage), batch_handler=handle_batch
    )
    for consumer in (one_by_one, batches):
        await consumer.start()
    try:

        async def all_handled() -> bool:
            await one_by_one.poll_once()
            await batches.poll_once()
            return calls[-1:] == [3] and stored[-1:] == [3]

        await eventually(all_handled)
    finally:
        for consumer in (one_by_one, batches):
            await consumer.stop()

    assert calls == [1, 2, 3]  # the refused message was handled once, not retried
    assert stored == [1, 3]
    dead = await read_topic(settings, settings.topics.dead_letter, 2)
    assert [dict(record.headers)["consumer"] for record in dead] in (
        [b"test-refused", b"test-refused-batch"],
        [b"test-refused-batch", b"test-refused"],
    )
    assert all(dict(record.headers)["error"] == b"refused: names another tenant's execution" for record in dead)
