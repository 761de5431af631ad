"""Webhook secrets, Standard Webhooks signatures, retry schedules and the bodies sent for state events.

Deliveries follow the Standard Webhooks convention (https://www.standardwebhooks.com), so receivers verify them
with its libraries: a secret ``whsec_<base64 key>``, headers ``webhook-id`` (one per delivery, the same on every
retry), ``webhook-timestamp`` (unix seconds of the attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256
of "{id}.{timestamp}.{body}" under the key>``, several space-separated while a rotated-out secret still signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, get_args

from flowline.db.webhooks import EventSubject
from flowline.messages import EventType, ExecutionEvent
from flowline.settings import ConfigurationError, env_name

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24
TEST_EVENT = "webhook.test"
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# What a webhook is told of when it names no events: how its executions end.
DEFAULT_EVENTS: tuple[EventType, ...] = ("WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED")
# Fields of an event's snapshot that a delivery's data carries as they are, when the event has them.
_SNAPSHOT_FIELDS = ("status", "output", "error", "attempt", "note")


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery attempt under ``secret`` (a ``whsec_`` secret)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(secrets_: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed by each of ``secrets_`` (newest first)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, message_id, timestamp, body) for secret in secrets_),
        "content-type": "application/json",
    }


def parse_retry_schedule(value: str) -> tuple[float, ...]:
    """The waits of ``FLOWLINE_WEBHOOK_RETRY_SCHEDULE_SECONDS`` (``"5,30,120"``).

    Raises:
        ConfigurationError: an entry is not a positive number.
    """
    setting = env_name("webhook_retry_schedule_seconds")
    waits = []
    for entry in (part.strip() for part in value.split(",")):
        try:
            wait = float(entry)
        except ValueError as err:
            raise ConfigurationError(f"invalid setting {setting}: {entry!r} is not a number of seconds") from err
        if wait <= 0:
            raise ConfigurationError(f"invalid setting {setting}: {entry!r} is not a positive number of seconds")
        waits.append(wait)
    return tuple(waits)


def body(event_type: str, timestamp: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery's JSON body: ``{"type", "timestamp", "data"}``."""
    return {"type": event_type, "timestamp": timestamp.isoformat().replace("+00:00", "Z"), "data": dict(data)}


def event_body(event: ExecutionEvent, execution: EventSubject) -> dict[str, Any]:
    """The body telling of ``event``; ``execution`` is its execution (workflow ref, version, started by)."""
    data: dict[str, Any] = {
        "executionId": str(event.execution_id),
        "workflowRef": execution.workflow_ref,
        "workflowVersion": execution.workflow_version,
        "startedBy": execution.started_by,
        "sequence": event.sequence,
    }
    if event.step_id is not None:
        data["stepId"] = event.step_id
    if event.task_id is not None:
        data["taskId"] = str(event.task_id)
    data.update((field, event.data[field]) for field in _SNAPSHOT_FIELDS if field in event.data)
    return body(event.event, event.occurred_at, data)


def wants(events: Iterable[str], workflows: Sequence[str] | None, event_type: str, workflow_ref: str) -> bool:
    """Whether a webhook subscribed to ``events`` of ``workflows`` (None: all) is told of this event."""
    return event_type in events and (workflows is None or workflow_ref in workflows)
