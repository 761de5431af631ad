"""Messages on every topic: wire form, tagged unions, evolution rules (DESIGN §4)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from flowline.kafka.outbox import outgoing
from flowline.messages import (
    CancelExecution,
    CancelSubmission,
    ControlMessage,
    EventMessage,
    ExecutionEvent,
    ExecutionRequested,
    LogMessage,
    Message,
    OperationEvent,
    RequestMessage,
    SubmissionMessage,
    SubmitExecution,
    TaskDispatched,
    TaskLogBatch,
    TaskLogRecord,
    TaskMessage,
    TimerFired,
    TimerMessage,
    TimerScheduled,
    decoder,
    encode,
)

TENANT = uuid.UUID("0190a000-0000-7000-8000-000000000001")
EXECUTION = uuid.UUID("0190a000-0000-7000-8000-000000000002")
WHEN = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _internal() -> dict[str, Any]:
    return {"tenant_id": TENANT, "execution_id": EXECUTION, "occurred_at": WHEN}


EXAMPLES: list[tuple[Message, Any]] = [
    (ExecutionRequested(**_internal()), RequestMessage),
    (
        SubmitExecution(
            id=uuid.uuid4(),
            tenant="dev",
            workflow="demo.hello",
            version=2,
            input={"name": "ada", "n": [1, 2]},
            idempotency_key="order-42",
            metadata={"source": "crm"},
            tags=["a"],
            occurred_at=WHEN,
        ),
        SubmissionMessage,
    ),
    (
        CancelSubmission(
            id=uuid.uuid4(), tenant="dev", idempotency_key="order-42", reason="withdrawn", occurred_at=WHEN
        ),
        SubmissionMessage,
    ),
    (CancelExecution(**_internal(), reason="no longer needed", requested_by="ops"), ControlMessage),
    (TimerFired(**_internal(), timer_id=uuid.uuid4(), kind="retry", step_execution_id=uuid.uuid4()), ControlMessage),
    (
        TaskDispatched(**_internal(), step_execution_id=uuid.uuid4(), step_id="fetch", generation=2, attempt=3),
        TaskMessage,
    ),
    (TimerScheduled(**_internal(), timer_id=uuid.uuid4(), fire_at=WHEN), TimerMessage),
    (
        ExecutionEvent(
            **_internal(),
            sequence=9,
            event="TASK_COMPLETED",
            step_id="fetch",
            task_id=uuid.uuid4(),
            data={"x": 1},
            timestamp_ms=5,
        ),
        EventMessage,
    ),
    (
        TaskLogRecord(
            **_internal(),
            task_id=uuid.uuid4(),
            step_id="fetch",
            attempt=1,
            level="WARN",
            message="slow",
            timestamp=WHEN,
            metadata={"ms": 1200},
        ),
        LogMessage,
    ),
    (
        TaskLogBatch(
            **_internal(),
            records=[TaskLogRecord(**_internal(), level="INFO", message="attempt 1 started", timestamp=WHEN)],
        ),
        LogMessage,
    ),
]
IDS = [type(message).__name__ for message, _ in EXAMPLES]


@pytest.mark.parametrize(("message", "union"), EXAMPLES, ids=IDS)
def test_round_trip_through_the_topic_decoder(message: Message, union: Any) -> None:
    decoded = decoder(union).decode(encode(message))

    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize(("message", "union"), EXAMPLES, ids=IDS)
def test_the_wire_form_is_json_tagged_with_the_class_name(message: Message, union: Any) -> None:
    wire = msgspec.json.decode(encode(message))

    if isinstance(message, ExecutionEvent):  # the public event payload: {"type": "Event", ...} in camelCase
        assert wire["type"] == "Event"
        assert wire["occurredAt"] == "2025-01-02T03:04:05.678901Z"
        assert wire["timestampMs"] == message.timestamp_ms
    else:
        assert wire["type"] == type(message).__name__
        assert wire["occurred_at"] == "2025-01-02T03:04:05.678901Z"
    assert wire["id"] == str(message.id)


@pytest.mark.parametrize(("message", "union"), EXAMPLES, ids=IDS)
def test_unknown_fields_are_tolerated(message: Message, union: Any) -> None:
    """A newer producer may add fields; an older consumer still reads the message (evolution rule)."""
    wire = msgspec.json.decode(encode(message))
    wire["added_in_a_later_version"] = {"nested": [1, 2]}

    assert decoder(union).decode(msgspec.json.encode(wire)) == message


@pytest.mark.parametrize(
    ("message", "union"),
    [
        (ExecutionEvent(**_internal(), sequence=1, event="WORKFLOW_STARTED", timestamp_ms=1), RequestMessage),
        (ExecutionRequested(**_internal()), ControlMessage),
        (CancelExecution(**_internal()), TaskMessage),
        (
            TaskDispatched(**_internal(), step_execution_id=uuid.uuid4(), step_id="a", generation=1, attempt=1),
            LogMessage,
        ),
    ],
    ids=["event-on-requests", "request-on-control", "cancel-on-tasks", "task-on-logs"],
)
def test_a_message_of_another_topic_is_refused(message: Message, union: Any) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"Invalid value '\w+' - at `\$\.type`"):
        decoder(union).decode(encode(message))


def test_the_union_decoder_dispatches_on_type() -> None:
    commands = decoder(RequestMessage | ControlMessage)
    requested = ExecutionRequested(tenant_id=TENANT, execution_id=EXECUTION)
    cancelled = CancelExecution(tenant_id=TENANT, execution_id=EXECUTION)

    assert isinstance(commands.decode(encode(requested)), ExecutionRequested)
    assert isinstance(commands.decode(encode(cancelled)), CancelExecution)


def test_submissions_and_internal_messages_never_decode_on_each_others_topics() -> None:
    """Other systems produce SubmitExecution to the submissions topic, and only that; the internal topics refuse it."""
    submitted = SubmitExecution(id=uuid.uuid4(), tenant="dev", workflow="w")
    internal: list[Message] = [
        ExecutionRequested(**_internal()),
        CancelExecution(**_internal()),
        TaskDispatched(**_internal(), step_execution_id=uuid.uuid4(), step_id="a", generation=1, attempt=1),
    ]

    with pytest.raises(msgspec.ValidationError, match="Invalid value 'SubmitExecution'"):
        decoder(RequestMessage | ControlMessage).decode(encode(submitted))
    for message in internal:
        with pytest.raises(msgspec.ValidationError, match=f"Invalid value '{type(message).__name__}'"):
            decoder(SubmissionMessage).decode(encode(message))


def test_the_documented_submit_execution_json_decodes() -> None:
    message_id = uuid.uuid4()
    raw = (
        '{"type": "SubmitExecution", "schema_version": 1, "id": "' + str(message_id) + '", "tenant": "dev", '
        '"workflow": "demo.hello", "input": {"n": 1}, "idempotency_key": "order-42"}'
    ).encode()

    decoded = decoder(SubmissionMessage).decode(raw)

    assert decoded == SubmitExecution(
        id=message_id,
        occurred_at=decoded.occurred_at,
        tenant="dev",
        workflow="demo.hello",
        input={"n": 1},
        idempotency_key="order-42",
    )
    assert (decoded.version, decoded.metadata, decoded.tags, decoded.schema_version) == (None, {}, [], 1)


def test_submit_execution_without_id_is_refused() -> None:
    raw = b'{"type": "SubmitExecution", "tenant": "dev", "workflow": "demo.hello"}'

    with pytest.raises(msgspec.ValidationError, match="missing required field `id`"):
        decoder(SubmissionMessage).decode(raw)


def test_submit_execution_requires_an_id_when_built_in_code() -> None:
    with pytest.raises(TypeError, match="id"):
        SubmitExecution(tenant="dev", workflow="w")  # type: ignore[call-arg]


@pytest.mark.parametrize("missing", ["tenant_id", "execution_id"])
def test_internal_messages_require_tenant_and_execution(missing: str) -> None:
    wire = msgspec.json.decode(encode(ExecutionRequested(**_internal())))
    del wire[missing]

    with pytest.raises(msgspec.ValidationError, match=f"missing required field `{missing}`"):
        decoder(RequestMessage).decode(msgspec.json.encode(wire))


def test_a_message_without_a_type_is_refused_by_a_union_decoder() -> None:
    wire = msgspec.json.decode(encode(CancelExecution(**_internal())))
    del wire["type"]

    with pytest.raises(msgspec.ValidationError, match="missing required field `type`"):
        decoder(ControlMessage).decode(msgspec.json.encode(wire))


def test_fields_added_later_have_defaults() -> None:
    """An older producer that omits optional fields is still read (evolution rule)."""
    raw = msgspec.json.encode(
        {
            "type": "Event",
            "tenantId": str(TENANT),
            "executionId": str(EXECUTION),
            "sequence": 1,
            "event": "E",
            "timestampMs": 1,
        }
    )

    decoded = decoder(EventMessage).decode(raw)

    assert (decoded.step_id, decoded.task_id, decoded.data) == (None, None, {})
    assert decoded.id.version == 7
    assert decoded.occurred_at.tzinfo is not None


def test_new_messages_get_a_uuid7_id_and_an_aware_timestamp() -> None:
    first = ExecutionRequested(tenant_id=TENANT, execution_id=EXECUTION)
    second = ExecutionRequested(tenant_id=TENANT, execution_id=EXECUTION)

    assert first.id.version == 7
    assert first.id != second.id
    assert first.occurred_at.utcoffset() is not None
    assert first.occurred_at.utcoffset() == timedelta(0)  # UTC


def test_messages_are_frozen() -> None:
    message = CancelExecution(tenant_id=TENANT, execution_id=EXECUTION)

    with pytest.raises(AttributeError):
        message.reason = "changed"  # type: ignore[misc]


def test_a_log_record_with_an_unknown_level_is_refused() -> None:
    wire = msgspec.json.decode(encode(TaskLogRecord(**_internal(), message="m")))
    wire["level"] = "TRACE"

    with pytest.raises(msgspec.ValidationError, match=r"\$\.level"):
        decoder(LogMessage).decode(msgspec.json.encode(wire))


def test_an_operation_event_is_camel_case_and_keyed_by_its_operation() -> None:
    operation_id = uuid.UUID("0190a000-0000-7000-8000-000000000003")
    event = OperationEvent(
        tenant_id=TENANT,
        operation_id=operation_id,
        event="OPERATION_COMPLETED",
        data={"id": str(operation_id), "kind": "cancel", "status": "completed", "total": 2},
        occurred_at=WHEN,
        timestamp_ms=5,
    )

    wire = msgspec.json.decode(encode(event))
    row = outgoing("flowline.events", event)

    assert (wire["type"], wire["operationId"], wire["timestampMs"]) == ("OperationEvent", str(operation_id), 5)
    assert decoder(EventMessage).decode(encode(event)) == event
    assert row.key == str(operation_id).encode()


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"tags": ["t" * 3000]}, "`$.tags[0]"),
        ({"tags": [f"t{n}" for n in range(51)]}, "`$.tags"),
        ({"metadata": {"k": "v" * 501}}, "`$.metadata[...]"),
        ({"metadata": {"k" * 101: "v"}}, "`key` in `$.metadata"),
        ({"metadata": {f"k{n}": "v" for n in range(51)}}, "`$.metadata"),
        ({"idempotency_key": "i" * 201}, "`$.idempotency_key"),
    ],
)
def test_a_submission_past_the_api_bounds_fails_validation(fields: dict[str, Any], where: str) -> None:
    """The consumer dead-letters what fails validation: a 3 KB tag no longer reaches an index row."""
    wire = {"type": "SubmitExecution", "id": str(uuid.uuid4()), "tenant": "dev", "workflow": "demo.hello", **fields}

    with pytest.raises(msgspec.ValidationError, match=re.escape(f"at {where}`") + "$"):
        decoder(SubmissionMessage).decode(msgspec.json.encode(wire))


def test_a_submission_at_the_bounds_decodes() -> None:
    fields = {
        "tags": [f"{n:0100}" for n in range(50)],
        "metadata": {f"{n:0100}": "v" * 500 for n in range(50)},
        "idempotency_key": "i" * 200,
    }
    wire = {"type": "SubmitExecution", "id": str(uuid.uuid4()), "tenant": "dev", "workflow": "demo.hello", **fields}

    decoded = decoder(SubmissionMessage).decode(msgspec.json.encode(wire))

    assert isinstance(decoded, SubmitExecution) and len(decoded.tags) == len(decoded.metadata) == 50
