"""An event never carries a value near Kafka's message limit: its row keeps the value, the event a marker."""

from __future__ import annotations

import uuid

import msgspec
from flowline.db.events import MAX_EVENT_VALUE_BYTES, NewEvent, event_rows
from flowline.domain.snapshots import PromiseSnapshot, TaskSnapshot


def test_a_large_output_or_promise_value_leaves_a_marker_of_its_size_in_the_event() -> None:
    huge = {"rows": ["x" * 1000] * 2000}  # about 2 MB as JSON: its event would be refused by the broker
    events = [
        NewEvent("TASK_COMPLETED", TaskSnapshot(status="completed", attempt=1, output=huge), "fetch"),
        NewEvent("PROMISE_RESOLVED", PromiseSnapshot(promise="ok", status="resolved", value="y" * 300_000), "wait"),
        NewEvent("TASK_COMPLETED", TaskSnapshot(status="completed", attempt=1, output={"small": [1, 2]}), "next"),
    ]

    _, snapshots, rows = event_rows(uuid.uuid4(), uuid.uuid4(), 2, events, "events")

    size = len(msgspec.json.encode(huge))
    marker = {"omitted": "too large for an event: read it from its row", "bytes": size}
    assert snapshots[0] == {"status": "completed", "attempt": 1, "output": marker}
    assert snapshots[1]["value"] == {"omitted": "too large for an event: read it from its row", "bytes": 300_002}
    assert snapshots[2] == {"status": "completed", "attempt": 1, "output": {"small": [1, 2]}}
    assert all(len(row.payload) < MAX_EVENT_VALUE_BYTES for row in rows)
    assert b'"small":[1,2]' in rows[2].payload
