"""The console's pure parts: the graph's layout, the Run form's fields and input, where a message goes, and
the diff of two attempts."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from flowline.errors import ClientError, ValidationFailed
from flowline_api.console.graph import (
    FAN_OUT_AT,
    SUMMARY_ABOVE,
    FanOut,
    fan_outs,
    folded,
    format_duration,
    group_counts,
    layout,
    levels,
    spans,
)
from flowline_api.console.login import _next_page
from flowline_api.console.version_steps import VersionSteps
from flowline_api.console.views import compact, diff_attempts, highlighted
from flowline_api.console.workflows import definition_graph, field_of, form_fields, form_input
from flowline_schemas.executions import AttemptList, TaskAttempt

DIAMOND = [
    {"id": "a", "type": "action"},
    {"id": "b", "type": "action", "needs": ["a"]},
    {"id": "c", "type": "sleep", "needs": ["a"]},
    {"id": "d", "type": "action", "needs": ["b", "c"]},
]


def test_levels_follow_the_deepest_need() -> None:
    assert levels(DIAMOND) == {"a": 0, "b": 1, "c": 1, "d": 2}
    assert levels([{"id": "z", "needs": ["y"]}, {"id": "y"}]) == {"y": 0, "z": 1}


def test_layout_places_levels_in_columns_and_draws_an_edge_per_need() -> None:
    runs = {"a": SimpleNamespace(status="completed", attempts=1, duration_ms=1500)}
    graph = layout(DIAMOND, runs)
    nodes = {node.step_id: node for node in graph.nodes}
    assert nodes["b"].x == nodes["c"].x > nodes["a"].x
    assert nodes["b"].y != nodes["c"].y
    assert nodes["d"].x > nodes["b"].x
    assert (nodes["a"].status, nodes["a"].duration, nodes["d"].status) == ("completed", "1.5 s", "not started")
    assert sorted((edge.source, edge.target) for edge in graph.edges) == [
        ("a", "b"),
        ("a", "c"),
        ("b", "d"),
        ("c", "d"),
    ]
    assert graph.width >= nodes["d"].x and graph.summary is None


def test_a_large_graph_is_summarised_per_level() -> None:
    steps = [{"id": "root"}] + [{"id": f"s{index}", "needs": ["root"]} for index in range(SUMMARY_ABOVE)]
    graph = layout(steps, {})
    assert graph.nodes == [] and graph.summary is not None
    assert [(row["level"], row["steps"], row["counts"]) for row in graph.summary] == [
        (0, 1, [("not started", 1)]),
        (1, SUMMARY_ABOVE, [("not started", SUMMARY_ABOVE)]),
    ]


def _branches(stem: str, count: int, needs: list[str], step_type: str = "action") -> list[dict[str, object]]:
    return [{"id": f"{stem}{n}", "type": step_type, "needs": needs} for n in range(count)]


def test_fan_outs_are_siblings_of_one_type_and_needs_whose_ids_differ_by_a_number() -> None:
    steps = [
        {"id": "start", "type": "action"},
        *_branches("fetch-", FAN_OUT_AT, ["start"]),
        *_branches("fetch_", FAN_OUT_AT, []),  # the same stem, other needs: another fan-out
        *_branches("nap", FAN_OUT_AT - 1, ["start"], "sleep"),  # too few
        *_branches("9", FAN_OUT_AT, ["start"]),  # numbers alone share no stem
    ]
    assert [(group.name, len(group.members)) for group in fan_outs(steps)] == [
        ("fetch", FAN_OUT_AT),
        ("fetch#2", FAN_OUT_AT),
    ]


def test_a_fan_out_is_counted_by_the_runs_of_places_its_branches_fill() -> None:
    interleaved = [
        {"id": "start", "type": "action"},
        *_branches("fetch-", FAN_OUT_AT - 2, ["start"]),
        {"id": "audit", "type": "action", "needs": ["start"]},
        *({"id": f"fetch-{n}", "type": "action", "needs": ["start"]} for n in (FAN_OUT_AT - 2, FAN_OUT_AT - 1)),
    ]
    (group,) = fan_outs(interleaved)
    assert group.spans == [(1, FAN_OUT_AT - 2), (FAN_OUT_AT, FAN_OUT_AT + 1)]  # not audit, at FAN_OUT_AT - 1
    assert spans([0, 1, 2, 7, 9, 10]) == [(0, 2), (7, 7), (9, 10)] and spans([]) == []


def test_a_folded_fan_out_is_one_step_that_the_steps_after_it_need() -> None:
    steps = [
        {"id": "start", "type": "action"},
        *_branches("fetch-", FAN_OUT_AT, ["start"]),
        {"id": "join", "type": "action", "needs": [f"fetch-{n}" for n in range(FAN_OUT_AT)]},
    ]
    groups = fan_outs(steps)
    drawn = folded(steps, groups, expanded=[])
    assert [(step["id"], step.get("needs", [])) for step in drawn] == [
        ("start", []),
        ("fetch-0", ["start"]),
        ("join", ["fetch-0"]),
    ]
    assert len(folded(steps, groups, expanded=["fetch"])) == FAN_OUT_AT + 2
    counts = group_counts(groups[0], {"completed": FAN_OUT_AT - 3, "failed": 2})
    assert (
        counts.label
        == f"{FAN_OUT_AT} \N{MULTIPLICATION SIGN} fetch: {FAN_OUT_AT - 3} completed, 2 failed, 1 not started"
    )
    graph = layout(drawn, {}, {"fetch-0": counts})
    node = next(node for node in graph.nodes if node.group is not None)
    assert (node.step_id, node.status, node.level) == ("fetch-0", "failed", 1)
    assert [(edge.source, edge.target) for edge in graph.edges] == [("start", "fetch-0"), ("fetch-0", "join")]


def test_a_workflows_graph_draws_a_fan_out_of_a_thousand_as_one_node() -> None:
    steps = [
        {"id": "start", "type": "action"},
        *_branches("fetch-", 1_000, ["start"]),
        {"id": "join", "type": "action", "needs": [f"fetch-{n}" for n in range(1_000)]},
    ]
    graph = definition_graph(steps)
    assert graph.summary is None and [node.step_id for node in graph.nodes] == ["start", "fetch-0", "join"]
    group = graph.nodes[1].group
    assert group is not None and group.label == "1,000 \N{MULTIPLICATION SIGN} fetch"
    assert graph.nodes[1].status == "not started"


def test_a_group_of_thousands_reads_as_people_write_numbers() -> None:
    group = FanOut("fetch", [f"fetch-{n}" for n in range(1000)], [(1, 1000)])
    label = group_counts(group, {"completed": 997, "failed": 3}).label
    assert label == "1,000 \N{MULTIPLICATION SIGN} fetch: 997 completed, 3 failed"


def test_durations_read_as_people_say_them() -> None:
    assert [format_duration(value) for value in (None, 350, 1200, 125_000)] == ["", "350 ms", "1.2 s", "2 min 5 s"]


def test_a_rerun_runs_the_step_and_all_that_needs_it() -> None:
    steps = VersionSteps.of(DIAMOND, size=0)
    assert steps.downstream_of("b") == ["b", "d"]
    assert steps.downstream_of("a") == ["a", "b", "c", "d"]
    assert steps.downstream_of("d") == ["d"]


def test_a_versions_steps_are_folded_once_and_found_by_id() -> None:
    wide = [
        {"id": "start", "type": "action"},
        *({"id": f"fetch-{n}", "type": "action", "needs": ["start"]} for n in range(12)),
        {"id": "join", "type": "action", "needs": [f"fetch-{n}" for n in range(12)]},
    ]
    steps = VersionSteps.of(wide, size=0)
    assert [group.name for group in steps.fan_outs] == ["fetch"]
    assert steps.drawn([]) is steps.folded  # the usual page reuses the folded steps made with the version's
    assert [step["id"] for step in steps.folded] == ["start", "fetch-0", "join"]
    assert [step["id"] for step in steps.drawn(["fetch"])] == [step["id"] for step in wide]
    assert steps.step("fetch-7") == wide[8] and steps.step("nope") is None and steps.step(None) is None
    assert steps.downstream_of("fetch-3") == ["fetch-3", "join"]


SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "count": {"type": "integer", "default": 2},
        "loud": {"type": "boolean"},
        "extra": {"type": "object"},
    },
}


def test_the_run_form_has_a_field_per_property_and_builds_the_input() -> None:
    fields = form_fields(SCHEMA)
    assert [(field.name, field.kind, field.required, field.default) for field in fields] == [
        ("name", "text", True, ""),
        ("count", "integer", False, "2"),
        ("loud", "boolean", False, ""),
        ("extra", "json", False, ""),
    ]
    form = {"input.name": "Ada", "input.count": "3", "input.loud": "true", "input.extra": '{"a": 1}'}
    assert form_input(fields, form) == {"name": "Ada", "count": 3, "loud": True, "extra": {"a": 1}}
    assert form_input(fields, {"input.count": ""}) == {"loud": False}  # empty fields are left to the schema
    with pytest.raises(ValidationFailed) as raised:
        form_input(fields, {"input.count": "three"})
    assert raised.value.pointer == "/input/count"
    assert form_input([], {"input": '{"free": true}'}) == {"free": True}


def test_a_validation_message_goes_beside_its_field() -> None:
    fields = form_fields(SCHEMA)
    assert field_of(ValidationFailed("/input/count: 'x' is not an integer", pointer="/input/count"), fields) == "count"
    assert field_of(ValidationFailed('/input: "name" is a required property', pointer="/input"), fields) == "name"
    assert field_of(ValidationFailed("/input: too many properties", pointer="/input"), fields) is None


def test_sign_in_only_returns_to_console_pages() -> None:
    assert _next_page("/ui/executions/1?step=a") == "/ui/executions/1?step=a"
    assert _next_page("https://elsewhere.example/ui/") == "/ui/executions"
    assert _next_page("//elsewhere.example/ui/") == "/ui/executions"
    assert _next_page(None) == "/ui/executions"


def test_a_definition_is_shown_without_its_unset_fields() -> None:
    stored = {"steps": [{"id": "a", "needs": [], "retry": None, "input": {"x": None}, "continueOnFailure": False}]}
    assert compact(stored) == {"steps": [{"id": "a", "input": {}, "continueOnFailure": False}]}


def test_highlighting_classes_each_token_and_escapes_everything() -> None:
    shown = str(highlighted({"a<b>": 'x"<script>', "n": -1.5, "ok": None}))
    assert '<span class="json-key">&#34;a&lt;b&gt;&#34;</span>:' in shown
    assert '<span class="json-string">&#34;x\\&#34;&lt;script&gt;&#34;</span>' in shown
    assert '<span class="json-number">-1.5</span>' in shown and '<span class="json-literal">null</span>' in shown
    assert "<script>" not in shown


def _attempt(generation: int, number: int, step_input: object, output: object) -> TaskAttempt:
    started = datetime(2026, 12, 7, tzinfo=UTC)
    return TaskAttempt(
        attempt=number,
        generation=generation,
        status="completed" if output is not None else "failed",
        started_at=started,
        finished_at=started,
        duration_ms=3,
        worker_id="w-1",
        error=None,
        input=step_input,
        output=output,
    )


def test_two_attempts_diff_their_pretty_input_and_output_line_by_line() -> None:
    attempts = AttemptList(
        attempts=[_attempt(0, 1, {"code": 503, "card": "x"}, None), _attempt(1, 1, {"code": 200, "card": "x"}, 1)]
    )

    diff = diff_attempts(attempts, "0.1", "1.1")

    assert (diff.before.generation, diff.after.generation) == (0, 1)
    assert [line for line in diff.input_lines if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        '-  "code": 503',
        '+  "code": 200',
    ]
    assert diff.output_lines[-2:] == ["-null", "+1"]
    assert diff_attempts(attempts, "0.1", "0.1").input_lines == []  # the same attempt: nothing changed
    with pytest.raises(ClientError, match=r"b: '2.1' is not an attempt of this step \(generation.attempt: 0.1, 1.1\)"):
        diff_attempts(attempts, "0.1", "2.1")
