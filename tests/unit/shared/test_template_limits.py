"""A template that would never end, or make a huge value, fails fast with TemplateLimitExceeded."""

from __future__ import annotations

import pytest
from flowline.domain.templating import TemplateError, render, render_condition

HOSTILE = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ 10 ** 1000000 }}",
    "{{ (10 ** 5) ** (10 ** 5) }}",
    "{{ 'x' | center(10**9) }}",
    "{{ 'x' | indent(10**9, true) }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ ('a' * 1000) | replace('a', 'b' * 1000000) }}",
    "{{ lipsum(10**7) }}",
    "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(10) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_a_hostile_template_fails_with_template_limit_exceeded(template: str) -> None:
    with pytest.raises(TemplateError, match="TemplateLimitExceeded"):
        render({"input": template}, {"input": {}})


def test_a_hostile_condition_fails_too() -> None:
    with pytest.raises(TemplateError, match="TemplateLimitExceeded"):
        render_condition("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {})


def test_templates_within_the_limits_render_as_before() -> None:
    context = {"input": {"rows": list(range(1000)), "name": "ada"}}
    rendered = render(
        {
            "loop": "{% for row in input.rows %}{{ row }},{% endfor %}",
            "sum": "{{ input.rows | sum }}",
            "text": "{{ input.name ~ '!' * 3 }}",
            "power": "{{ 2 ** 64 }}",
            "wide": "{{ input.name | center(20) }}",
            "replaced": "{{ input.name | replace('a', 'A') }}",
            "format": "{{ '%s-%s' % (input.name, 2) }}",
        },
        context,
    )
    assert rendered["loop"] == "".join(f"{row}," for row in range(1000))
    assert rendered["sum"] == sum(range(1000))
    assert rendered["text"] == "ada!!!"
    assert rendered["power"] == 2**64
    assert rendered["wide"] == "ada".center(20)
    assert rendered["replaced"] == "AdA"
    assert rendered["format"] == "ada-2"
