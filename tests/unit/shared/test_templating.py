"""Sandboxed Jinja2 templates over a step's context."""

from __future__ import annotations

import copy
from typing import Any

import jinja2
import pytest
from flowline.domain.templating import TemplateError, check_template, render, render_condition
from flowline.errors import ValidationFailed


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "input": {"count": 3, "name": "ada", "tags": ["x", "y"], "flag": False, "ratio": 0.5},
        "steps": {"fetch": {"output": {"user": {"id": 7}, "rows": [1, 2]}}},
        "execution": {"id": "e-1"},
    }


# render ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ input.count }}", 3),
        ("{{ input.flag }}", False),
        ("{{ input.ratio }}", 0.5),
        ("{{ input.tags }}", ["x", "y"]),
        ("{{ steps.fetch.output.user }}", {"id": 7}),
        ("{{ steps.fetch.output.rows | sum }}", 3),
        ("{{ input.count * 2 }}", 6),
        ("{{ none }}", None),
        ("{{input.name}}", "ada"),
    ],
)
def test_a_single_expression_keeps_its_native_type(template: str, expected: Any, context: dict[str, Any]) -> None:
    result = render(template, context)

    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("hello {{ input.name }}", "hello ada"),
        ("{{ input.count }} items", "3 items"),
        ("{{ input.count }}{{ input.count }}", "33"),
        ("{{ input.name }} is {{ execution.id }}", "ada is e-1"),
        ("{% for t in input.tags %}<{{ t }}>{% endfor %}", "<x><y>"),
        ("{% if input.count > 2 %}many{% else %}few{% endif %}", "many"),
    ],
)
def test_other_templates_interpolate_into_a_string(template: str, expected: str, context: dict[str, Any]) -> None:
    assert render(template, context) == expected


def test_html_is_not_escaped(context: dict[str, Any]) -> None:
    assert render("<b>{{ '<i>' }}</b>", context) == "<b><i></b>"


@pytest.mark.parametrize(
    "plain", ["", "no templates here", '{"json": {"a": 1}}', "single { brace }", 42, 1.5, None, True]
)
def test_values_without_templates_are_returned_unchanged(plain: Any, context: dict[str, Any]) -> None:
    assert render(plain, context) == plain


def test_nested_dicts_and_lists_are_rendered(context: dict[str, Any]) -> None:
    value = {
        "user": "{{ steps.fetch.output.user.id }}",
        "greeting": ["hi {{ input.name }}", {"count": "{{ input.count }}"}, 5, None],
        "literal": "text",
    }
    original = copy.deepcopy(value)

    result = render(value, context)

    assert result == {"user": 7, "greeting": ["hi ada", {"count": 3}, 5, None], "literal": "text"}
    assert value == original  # the definition's input is not modified in place


@pytest.mark.parametrize(
    "template",
    [
        "{{ missing }}",
        "{{ input.missing }}",
        "{{ steps.other.output }}",
        "hello {{ missing }}",
        "{{ missing.deeper }}",
        "{% if missing %}x{% endif %}",
        "{{ missing + 1 }}",
    ],
)
def test_undefined_variables_raise(template: str, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match=r"undefined|no attribute"):
        render(template, context)


def test_an_undefined_variable_nested_in_a_value_raises(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render({"a": ["{{ input.name }}", "{{ nope }}"]}, context)


@pytest.mark.parametrize("template", ["{{ [missing] }}", "{{ {'key': missing} }}"])
def test_an_undefined_variable_inside_a_literal_raises(template: str, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render(template, context)


@pytest.mark.parametrize(
    "template",
    [
        "{{ input.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "text {{ input.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ render.__globals__ }}",
        "{{ (1).__class__.__base__ }}",
    ],
)
def test_the_sandbox_blocks_unsafe_attribute_access(template: str, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render(template, context | {"render": render})


@pytest.mark.parametrize(
    "template",
    ["{{ input.tags.append('z') }}", "{{ input.update({'count': 0}) }}", "{{ input.pop('name') }}"],
)
def test_the_sandbox_blocks_mutating_the_context(template: str, context: dict[str, Any]) -> None:
    original = copy.deepcopy(context)

    with pytest.raises(TemplateError, match="unsafe"):
        render(template, context)
    assert context == original


@pytest.mark.parametrize("template", ["{{ input.count ", "{% if %}", "{{ }}", "x {{ 1 + }}", "{{ a }} }}"])
def test_templates_that_do_not_parse_raise_template_error(template: str, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render(template, context)


def test_template_error_keeps_the_jinja_cause(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError) as caught:
        render("{{ missing }}", context)

    assert caught.value.__cause__ is not None
    assert "{{ missing }}" in str(caught.value)


# render_condition -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("input.count > 2", True),
        ("input.count > 5", False),
        ("input.flag", False),
        ("not input.flag", True),
        ("'x' in input.tags", True),
        ("steps.fetch.output.user.id == 7", True),
        ("{{ input.count > 2 }}", True),
        ("{{ input.flag }}", False),
        ("{% if input.count > 2 %}yes{% endif %}", True),
        ("{% if input.count > 5 %}yes{% endif %}", False),
        ("input.name", True),
        ("input.tags | length", True),
        ("[]", False),
    ],
)
def test_render_condition(condition: str, expected: bool, context: dict[str, Any]) -> None:
    assert render_condition(condition, context) is expected


@pytest.mark.parametrize("text", ["", "false", "False", " FALSE ", "0", "none", "None", "no", "No"])
def test_render_condition_reads_false_looking_strings_as_false(text: str, context: dict[str, Any]) -> None:
    assert render_condition("{{ input.value }}", context | {"input": {"value": text}}) is False


@pytest.mark.parametrize("text", ["yes", "true", "1", "anything"])
def test_render_condition_reads_other_strings_as_true(text: str, context: dict[str, Any]) -> None:
    assert render_condition("{{ input.value }}", context | {"input": {"value": text}}) is True


def test_render_condition_raises_on_an_undefined_name(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render_condition("input.missing > 1", context)


# check_template -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "{{ input.x }}",
        "a {{ input.x }} b {{ steps.y.output }}",
        "{% for i in input.items %}{{ i }}{% endfor %}",
        {"a": ["{{ x }}", 1, None], "b": {"c": "plain"}},
        "no template",
        42,
        None,
    ],
)
def test_check_template_accepts_templates_that_parse(value: Any) -> None:
    check_template(value, "/p")  # raises nothing


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        ("{{ x ", "/p"),
        ("{{ x ) }}", "/p"),
        ("{% endfor %}", "/p"),
        ({"a": {"b": "{{ }}"}}, "/p/a/b"),
        ({"a": ["ok", "ok", "{% if %}"]}, "/p/a/2"),
        (["{{ 1 + }}"], "/p/0"),
    ],
)
def test_check_template_names_the_pointer_of_a_bad_template(value: Any, pointer: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_template(value, "/p")

    assert caught.value.pointer == pointer
    assert caught.value.detail.startswith(f"template at {pointer} does not parse")


def test_a_condition_on_an_absent_value_is_false() -> None:
    assert render_condition("input.count", {"input": {}}) is False
    assert render_condition("input.a.b.c", {"input": {}}) is False
    assert render_condition("{% if input.go %}yes{% endif %}", {"input": {}}) is False
    assert render_condition("input.count", {"input": {"count": 2}}) is True


def test_an_expression_that_gives_a_function_is_an_error() -> None:
    with pytest.raises(TemplateError, match="gives a function"):
        render("{{ input.items }}", {"input": {"items": [1]}})
    assert render("{{ input['items'] }}", {"input": {"items": [1]}}) == [1]


def test_jinja2_still_raises_when_a_strict_undefined_is_printed() -> None:
    # An undefined name inside a native value is reported by printing it (jinja2 has no public function for it).
    with pytest.raises(jinja2.UndefinedError, match=r"^'missing' is undefined$"):
        str(jinja2.StrictUndefined(name="missing"))
    with pytest.raises(TemplateError, match="UndefinedError: 'missing' is undefined"):
        render("{{ [1, missing] }}", {})
