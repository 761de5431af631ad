"""The workflow definition model and its validator (DESIGN §6)."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import pytest
from flowline.domain.definitions import (
    RetryPolicy,
    StepDefinition,
    WorkflowDefinition,
    find_cycle,
    mask_definition,
    masked_request,
    parse_duration,
    request_secrets,
    validate_definition,
)
from flowline.errors import TooLarge, ValidationFailed

ACTIONS = frozenset({"core.echo", "core.noop"})


def step(step_id: str, *needs: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "action", "action": "core.noop", "needs": list(needs), **fields}


def definition(*steps: dict[str, Any], output: Any = None) -> WorkflowDefinition:
    return msgspec.convert({"steps": list(steps), "output": output}, WorkflowDefinition)


def validate(workflow: WorkflowDefinition, *, max_steps: int = 50) -> None:
    validate_definition(workflow, known_actions=ACTIONS, max_steps=max_steps)


def refusal(workflow: WorkflowDefinition, *, max_steps: int = 50) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        validate(workflow, max_steps=max_steps)
    return caught.value


# Decoding -------------------------------------------------------------------------------------------


def test_decoding_reads_camel_case_fields() -> None:
    raw = b"""{"steps": [{"id": "a", "type": "action", "action": "core.echo", "continueOnFailure": true,
               "retry": {"maxAttempts": 3, "initialInterval": 0.5}}]}"""

    workflow = msgspec.json.decode(raw, type=WorkflowDefinition)

    only = workflow.steps[0]
    assert only.continue_on_failure is True
    assert only.retry is not None
    assert (only.retry.max_attempts, only.retry.initial_interval) == (3, 0.5)


def test_decoding_fills_defaults() -> None:
    workflow = msgspec.json.decode(b'{"steps": [{"id": "a", "type": "action"}]}', type=WorkflowDefinition)

    only = workflow.steps[0]
    assert (only.needs, only.continue_on_failure, only.retry, only.when) == ([], False, None, None)
    assert workflow.output is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b'{"steps": [{"id": "a", "type": "action", "continue_on_failure": true}]}',
            "Object contains unknown field `continue_on_failure` - at `$.steps[0]`",
        ),
        (
            b'{"steps": [{"id": "a", "type": "action", "colour": "red"}]}',
            "Object contains unknown field `colour` - at `$.steps[0]`",
        ),
        (b'{"steps": [], "name": "extra"}', "Object contains unknown field `name`"),
        (
            b'{"steps": [{"id": "a", "type": "action", "retry": {"attempts": 2}}]}',
            "Object contains unknown field `attempts` - at `$.steps[0].retry`",
        ),
    ],
)
def test_decoding_refuses_unknown_fields(raw: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(raw, type=WorkflowDefinition)
    assert str(caught.value) == message


def test_decoding_refuses_a_step_type_outside_the_schema() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"steps\[0\]\.type"):
        msgspec.json.decode(b'{"steps": [{"id": "a", "type": "shell"}]}', type=WorkflowDefinition)


def test_decoding_requires_steps() -> None:
    with pytest.raises(msgspec.ValidationError, match="missing required field `steps`"):
        msgspec.json.decode(b"{}", type=WorkflowDefinition)


# validate_definition ---------------------------------------------------------------------------------


def test_a_valid_diamond_passes() -> None:
    workflow = definition(
        step("a", input={"n": "{{ input.n }}"}),
        step("b", "a", when="steps.a.output.n > 1"),
        step("c", "a", action="core.echo"),
        step("d", "b", "c"),
        output={"result": "{{ steps.d.output }}"},
    )

    validate(workflow)  # raises nothing


def test_needs_may_point_forward() -> None:
    validate(definition(step("late_reader", "writer"), step("writer")))


def test_empty_steps_are_refused() -> None:
    error = refusal(definition())

    assert error.pointer == "/definition/steps"
    assert "at least one step" in error.detail


def test_more_steps_than_allowed_is_too_large() -> None:
    workflow = definition(*(step(f"s{i}") for i in range(4)))

    with pytest.raises(TooLarge, match="at most 3 steps, this one has 4"):
        validate(workflow, max_steps=3)
    validate(workflow, max_steps=4)


def test_duplicate_step_ids_are_refused() -> None:
    error = refusal(definition(step("a"), step("b"), step("a")))

    assert error.pointer == "/definition/steps/2/id"
    assert "'a' is used twice" in error.detail
    assert error.extra["pointer"] == "/definition/steps/2/id"
    assert error.status_code == 422


@pytest.mark.parametrize("bad_id", ["", "1st", "has space", "dot.ted", "{{x}}"])
def test_step_ids_must_be_identifier_like(bad_id: str) -> None:
    error = refusal(definition(step("ok"), step(bad_id)))

    assert error.pointer == "/definition/steps/1/id"


@pytest.mark.parametrize("good_id", ["fetch", "fetch-user", "_private", "step2"])
def test_step_ids_may_use_letters_digits_underscores_and_hyphens(good_id: str) -> None:
    validate(definition(step(good_id)))


def test_unknown_needs_are_refused_with_a_pointer_to_the_need() -> None:
    error = refusal(definition(step("a"), step("b", "a", "ghost")))

    assert error.pointer == "/definition/steps/1/needs/1"
    assert "'b' needs unknown step 'ghost'" in error.detail


def test_a_cycle_is_named_in_order() -> None:
    error = refusal(definition(step("a", "b"), step("b", "c"), step("c", "a")))

    assert error.pointer == "/definition/steps"
    assert error.detail == "steps form a cycle: a → b → c → a"


def test_a_step_needing_itself_is_a_cycle() -> None:
    error = refusal(definition(step("start"), step("loop", "start", "loop")))

    assert error.detail == "steps form a cycle: loop → loop"


@pytest.mark.parametrize(
    ("agent", "message"),
    [("ghost", "step 'b': unknown agent 'ghost'"), (None, "step 'b': an agent step names its agent as agent: <name>")],
)
def test_agent_steps_name_a_registered_agent(agent: str | None, message: str) -> None:
    workflow = definition(step("a"), {"id": "b", "type": "agent", "agent": agent})

    with pytest.raises(ValidationFailed) as caught:
        validate_definition(workflow, known_actions=ACTIONS, max_steps=50, known_agents={"bot"})

    assert (caught.value.detail, caught.value.pointer) == (message, "/definition/steps/1/agent")


@pytest.mark.parametrize("action", ["core.nope", None])
def test_unknown_actions_are_refused(action: str | None) -> None:
    error = refusal(definition(step("a", action=action)))

    assert error.pointer == "/definition/steps/0/action"
    assert f"unknown action {action!r}" in error.detail


@pytest.mark.parametrize(
    ("workflow", "pointer"),
    [
        (definition(step("a", input="{{ input.x ")), "/definition/steps/0/input"),
        (definition(step("a", input={"list": ["ok", "{% if %}"]})), "/definition/steps/0/input/list/1"),
        (definition(step("a"), step("b", when="input.x >")), "/definition/steps/1/when"),
        (definition(step("a"), step("b", when="{{ input.x ) }}")), "/definition/steps/1/when"),
        (definition(step("a"), output={"total": "{{ steps.a.output + }}"}), "/definition/output/total"),
    ],
)
def test_templates_that_do_not_parse_are_refused(workflow: WorkflowDefinition, pointer: str) -> None:
    error = refusal(workflow)

    assert error.pointer == pointer
    assert "does not parse" in error.detail


def test_templates_referencing_unknown_names_still_validate() -> None:
    """Validation parses templates; names resolve only when the step runs."""
    validate(definition(step("a", input="{{ nobody.knows }}"), output="{{ steps.zzz.output }}"))


def test_a_statement_template_condition_is_accepted() -> None:
    validate(definition(step("a"), step("b", "a", when="{% if input.go %}yes{% endif %}")))


# find_cycle -----------------------------------------------------------------------------------------


def test_find_cycle_returns_none_for_a_dag() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}) is None


def test_find_cycle_returns_none_for_no_steps() -> None:
    assert find_cycle({}) is None


def test_find_cycle_returns_a_closed_path() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]


def test_find_cycle_starts_the_path_at_the_cycle_not_at_the_entry() -> None:
    assert find_cycle({"entry": ["x"], "x": ["y"], "y": ["x"]}) == ["x", "y", "x"]


def test_find_cycle_finds_a_cycle_behind_a_finished_branch() -> None:
    needs = {"root": ["done", "loop1"], "done": [], "loop1": ["loop2"], "loop2": ["loop1"]}

    assert find_cycle(needs) == ["loop1", "loop2", "loop1"]


def test_find_cycle_ignores_needs_outside_the_graph() -> None:
    assert find_cycle({"a": ["ghost"]}) is None


def test_find_cycle_handles_the_default_step_limit() -> None:
    chain = {f"s{i}": [f"s{i + 1}"] for i in range(499)} | {"s499": []}

    assert find_cycle(chain) is None


def test_find_cycle_handles_a_chain_deeper_than_the_recursion_limit() -> None:
    depth = sys.getrecursionlimit() + 100
    chain = {f"s{i}": [f"s{i + 1}"] for i in range(depth)} | {f"s{depth}": []}

    assert find_cycle(chain) is None


def test_step_definition_is_frozen() -> None:
    only = StepDefinition(id="a", type="action")

    with pytest.raises(AttributeError):
        only.id = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), (0.5, 0.5), ("500ms", 0.5), ("90s", 90.0), ("1h30m", 5400.0), ("2d", 172800.0), ("1m 30s", 90.0)],
)
def test_durations_parse(value: float | str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "5x", "1h30", 0, -3, "0s"])
def test_bad_durations_are_refused(value: float | str) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=9, initial_interval=1, max_interval=10, jitter=False)
    assert [policy.delay(attempt, 0.9) for attempt in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_fixed_backoff_and_jitter() -> None:
    fixed = RetryPolicy(backoff="fixed", initial_interval=3, jitter=False)
    assert [fixed.delay(attempt, 0.0) for attempt in (1, 5)] == [3, 3]
    jittered = RetryPolicy(backoff="fixed", initial_interval=4, jitter=True)
    assert jittered.delay(1, 0.0) == 2 and jittered.delay(1, 0.999) < 4


def test_a_sleep_step_needs_exactly_one_of_duration_and_until() -> None:
    for extra in ({}, {"duration": 5, "until": "{{ input.at }}"}):
        step = {"id": "nap", "type": "sleep", **extra}
        with pytest.raises(ValidationFailed, match="exactly one of duration and until"):
            validate_definition(
                msgspec.convert({"steps": [step]}, WorkflowDefinition), known_actions=set(), max_steps=10
            )
    bad = msgspec.convert({"steps": [{"id": "nap", "type": "sleep", "duration": "forever"}]}, WorkflowDefinition)
    with pytest.raises(ValidationFailed) as caught:
        validate_definition(bad, known_actions=set(), max_steps=10)
    assert caught.value.pointer == "/definition/steps/0/duration"


def test_secret_header_values_are_masked_wherever_a_definition_or_request_is_shown() -> None:
    stored = {
        "steps": [
            {"id": "a", "type": "action", "action": "core.echo"},
            {
                "id": "call",
                "type": "http",
                "request": {
                    "url": "https://x.example",
                    "headers": {"Authorization": {"secret": "gAAAA-token"}, "X": "y"},
                },
            },
        ]
    }
    definition = msgspec.convert(stored, WorkflowDefinition)
    request = definition.steps[1].request
    assert request is not None

    assert mask_definition(stored)["steps"][1]["request"]["headers"] == {"Authorization": {"secret": "***"}, "X": "y"}
    assert stored["steps"][1]["request"]["headers"]["Authorization"] == {"secret": "gAAAA-token"}  # not changed
    assert masked_request(request)["headers"] == {"Authorization": {"secret": "***"}, "X": "y"}
    assert request_secrets(request) == {"Authorization": "gAAAA-token"}
    assert request_secrets(definition.steps[0].request) == {}


def test_a_secret_header_value_is_never_checked_as_a_template() -> None:
    definition = msgspec.convert(
        {
            "steps": [
                {
                    "id": "call",
                    "type": "http",
                    "request": {"url": "https://x.example", "headers": {"Authorization": {"secret": "{{ not closed"}}},
                }
            ]
        },
        WorkflowDefinition,
    )

    validate_definition(definition, known_actions=(), max_steps=10)
