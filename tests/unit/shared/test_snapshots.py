from __future__ import annotations

import msgspec
from flowline.domain.snapshots import ChildWorkflowSnapshot, TaskSnapshot, WorkflowSnapshot


def test_a_snapshot_is_camel_case_without_the_fields_that_do_not_apply() -> None:
    retry_at = "2026-11-22T10:00:00+00:00"
    snapshot = TaskSnapshot(status="scheduled", attempt=2, retry_at=retry_at)

    assert msgspec.to_builtins(snapshot) == {
        "status": "scheduled",
        "attempt": 2,
        "retryAt": "2026-11-22T10:00:00+00:00",
    }


def test_workflow_and_child_snapshots_name_what_they_describe() -> None:
    workflow = WorkflowSnapshot(status="pending", workflow_ref="demo.x", workflow_version=3)
    child = ChildWorkflowSnapshot(child_execution_id="0193", status="running", workflow="demo.y", attempt=1)

    assert msgspec.to_builtins(workflow) == {"status": "pending", "workflowRef": "demo.x", "workflowVersion": 3}
    assert msgspec.to_builtins(child) == {
        "childExecutionId": "0193",
        "status": "running",
        "workflow": "demo.y",
        "attempt": 1,
    }
