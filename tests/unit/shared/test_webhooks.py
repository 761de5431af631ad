"""Webhook secrets, signatures (checked against the Standard Webhooks library), retry schedules and bodies."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime

import pytest
import standardwebhooks
from flowline.db.webhooks import EventSubject
from flowline.domain.webhooks import event_body, new_secret, parse_retry_schedule, sign, signature_headers, wants
from flowline.messages import ExecutionEvent
from flowline.settings import ConfigurationError


def test_a_secret_is_whsec_and_24_random_bytes() -> None:
    first, second = new_secret(), new_secret()

    assert first.startswith("whsec_") and len(base64.b64decode(first.removeprefix("whsec_"))) == 24
    assert first != second


def test_signatures_verify_with_the_standard_webhooks_library_under_each_secret() -> None:
    new, old = new_secret(), new_secret()
    body = b'{"type":"WORKFLOW_FAILED","data":{"n":1}}'
    headers = signature_headers([new, old], "msg-1", int(time.time()), body)

    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (new, old):
        assert standardwebhooks.Webhook(secret).verify(body, headers) == {"type": "WORKFLOW_FAILED", "data": {"n": 1}}
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new_secret()).verify(body, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(new).verify(body + b" ", headers)


def test_a_signature_is_what_the_library_computes() -> None:
    secret = new_secret()
    moment = datetime.fromtimestamp(1_765_000_000, UTC)

    expected = standardwebhooks.Webhook(secret).sign("msg-2", moment, "{}")

    assert sign(secret, "msg-2", 1_765_000_000, b"{}") == expected


def test_the_retry_schedule_setting() -> None:
    assert parse_retry_schedule("5, 30,120") == (5.0, 30.0, 120.0)
    for bad in ("5,soon", "5,0", "-1"):
        with pytest.raises(ConfigurationError, match="FLOWLINE_WEBHOOK_RETRY_SCHEDULE_SECONDS"):
            parse_retry_schedule(bad)


def test_the_default_schedule_gives_at_least_eight_attempts_over_at_least_a_day() -> None:
    from flowline.settings import Settings

    waits = parse_retry_schedule(Settings().webhook_retry_schedule_seconds)

    assert waits[0] <= 5 and list(waits) == sorted(waits)
    assert len(waits) + 1 >= 8 and sum(waits) >= 86_400


def test_an_event_body_names_the_execution_and_what_changed() -> None:
    execution_id, task_id = uuid.uuid4(), uuid.uuid4()
    event = ExecutionEvent(
        tenant_id=uuid.uuid4(),
        execution_id=execution_id,
        timestamp_ms=0,
        sequence=4,
        event="TASK_FAILED",
        step_id="charge",
        task_id=task_id,
        data={"status": "failed", "attempt": 2, "error": {"message": "card declined"}, "worker": "w-1"},
        occurred_at=datetime(2026, 12, 7, 16, 0, tzinfo=UTC),
    )
    execution = EventSubject(
        id=execution_id, workflow_ref="billing.invoice", workflow_version=3, started_by="api-key:x"
    )

    assert event_body(event, execution) == {
        "type": "TASK_FAILED",
        "timestamp": "2026-12-07T16:00:00Z",
        "data": {
            "executionId": str(execution_id),
            "workflowRef": "billing.invoice",
            "workflowVersion": 3,
            "startedBy": "api-key:x",
            "sequence": 4,
            "stepId": "charge",
            "taskId": str(task_id),
            "status": "failed",
            "error": {"message": "card declined"},
            "attempt": 2,
        },
    }


def test_a_webhook_wants_its_events_of_its_workflows() -> None:
    assert wants(["WORKFLOW_FAILED"], None, "WORKFLOW_FAILED", "a.b")
    assert not wants(["WORKFLOW_FAILED"], None, "WORKFLOW_COMPLETED", "a.b")
    assert wants(["WORKFLOW_FAILED"], ["a.b"], "WORKFLOW_FAILED", "a.b")
    assert not wants(["WORKFLOW_FAILED"], ["a.c"], "WORKFLOW_FAILED", "a.b")
