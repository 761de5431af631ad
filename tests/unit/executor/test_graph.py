"""Pure graph decisions: which steps may run, which failure fails the execution, when it is over."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from flowline.domain.definitions import WorkflowDefinition
from flowline_executor.graph import Graph


def graph(*steps: dict[str, Any]) -> Graph:
    full = [{"type": "action", "action": "core.noop", **step} for step in steps]
    return Graph(msgspec.convert({"steps": full}, WorkflowDefinition))


def diamond(*, b_continues: bool = False) -> Graph:
    return graph(
        {"id": "a"},
        {"id": "b", "needs": ["a"], "continueOnFailure": b_continues},
        {"id": "c", "needs": ["a"]},
        {"id": "d", "needs": ["b", "c"]},
    )


def ready_ids(g: Graph, **statuses: str) -> list[str]:
    return [step.id for step in g.ready(statuses)]


def test_graph_indexes_steps_by_id() -> None:
    g = diamond()

    assert list(g.steps) == ["a", "b", "c", "d"]
    assert g.steps["d"].needs == ["b", "c"]


def test_only_roots_are_ready_at_the_start() -> None:
    assert ready_ids(diamond(), a="pending", b="pending", c="pending", d="pending") == ["a"]


def test_every_independent_root_is_ready_in_definition_order() -> None:
    g = graph({"id": "z"}, {"id": "y"}, {"id": "x", "needs": ["z"]})

    assert ready_ids(g, z="pending", y="pending", x="pending") == ["z", "y"]


def test_both_branches_become_ready_when_the_root_completes() -> None:
    assert ready_ids(diamond(), a="completed", b="pending", c="pending", d="pending") == ["b", "c"]


@pytest.mark.parametrize("c_status", ["pending", "scheduled", "running"])
def test_the_join_waits_for_every_need(c_status: str) -> None:
    assert ready_ids(diamond(), a="completed", b="completed", c=c_status, d="pending") == (
        ["c"] if c_status == "pending" else []
    )


def test_the_join_is_ready_when_every_need_completed() -> None:
    assert ready_ids(diamond(), a="completed", b="completed", c="completed", d="pending") == ["d"]


def test_skipped_needs_count_as_satisfied() -> None:
    assert ready_ids(diamond(), a="completed", b="skipped", c="completed", d="pending") == ["d"]


def test_a_failed_need_with_continue_on_failure_is_satisfied() -> None:
    assert ready_ids(diamond(b_continues=True), a="completed", b="failed", c="completed", d="pending") == ["d"]


def test_a_failed_need_without_continue_on_failure_is_not_satisfied() -> None:
    assert ready_ids(diamond(), a="completed", b="failed", c="completed", d="pending") == []


def test_a_cancelled_need_is_not_satisfied() -> None:
    assert ready_ids(diamond(), a="completed", b="cancelled", c="completed", d="pending") == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("scheduled", []),
        ("running", []),
        ("failed", []),
        ("cancelled", []),
        ("completed", ["b", "c"]),
        ("skipped", ["b", "c"]),
    ],
)
def test_a_step_that_left_pending_is_never_ready_again(status: str, expected: list[str]) -> None:
    assert ready_ids(diamond(), a=status, b="pending", c="pending", d="pending") == expected


def test_failed_step_is_none_while_nothing_failed() -> None:
    assert diamond().failed_step({"a": "completed", "b": "skipped", "c": "running", "d": "pending"}) is None


def test_failed_step_names_a_failure_without_continue_on_failure() -> None:
    assert diamond().failed_step({"a": "completed", "b": "completed", "c": "failed", "d": "pending"}) == "c"


def test_failed_step_ignores_a_failure_with_continue_on_failure() -> None:
    g = diamond(b_continues=True)

    assert g.failed_step({"a": "completed", "b": "failed", "c": "completed", "d": "pending"}) is None


def test_failed_step_returns_the_first_in_definition_order() -> None:
    g = graph({"id": "first"}, {"id": "second"})

    assert g.failed_step({"second": "failed", "first": "failed"}) == "first"


def test_finished_when_every_step_is_terminal() -> None:
    assert diamond().finished({"a": "completed", "b": "failed", "c": "skipped", "d": "cancelled"}) is True


@pytest.mark.parametrize("active", ["pending", "scheduled", "running"])
def test_not_finished_while_any_step_is_active(active: str) -> None:
    assert diamond().finished({"a": "completed", "b": "completed", "c": "completed", "d": active}) is False


def test_leaves_are_the_steps_nothing_needs() -> None:
    assert diamond().leaves() == ["d"]
    independent = graph(
        {"id": "x", "type": "action", "action": "core.noop"},
        {"id": "y", "type": "action", "action": "core.noop"},
    )
    assert independent.leaves() == ["x", "y"]
