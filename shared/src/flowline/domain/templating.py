"""Sandboxed Jinja2 templates over a step's context (`input`, `steps.<id>.output`, `execution`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import jinja2

from flowline.domain.template_limits import BoundedSandbox, budgeted
from flowline.errors import ValidationFailed
from flowline.runtime.caches import memoize


class TemplateError(Exception):
    """A template does not parse or fails to render."""


# Inputs and outputs are strict, so a typo fails the step with a clear message; conditions are lenient, so
# `when: input.flag` is simply false when the flag is absent (as in Jinja, Airflow and Conductor).
_ENVIRONMENT = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)
_LENIENT_ENVIRONMENT = BoundedSandbox(undefined=jinja2.ChainableUndefined, autoescape=False)


def _single_expression(text: str) -> str | None:
    """The expression inside ``{{ ... }}`` when that is the whole string, so its native value is kept."""
    stripped = text.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        return stripped[2:-2].strip()
    return None


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def check_template(value: Any, pointer: str) -> None:
    """Parse every template inside ``value``.

    Raises:
        ValidationFailed: a template does not parse; ``pointer`` locates it.
    """
    if isinstance(value, str):
        if not _is_template(value):
            return
        try:
            expression = _single_expression(value)
            if expression is not None:
                _ENVIRONMENT.compile_expression(expression)
            else:
                _ENVIRONMENT.parse(value)
        except jinja2.TemplateSyntaxError as err:
            raise ValidationFailed(f"template at {pointer} does not parse: {err.message}", pointer=pointer) from err
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_template(item, f"{pointer}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_template(item, f"{pointer}/{index}")


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template inside ``value`` (strings, and strings nested in dicts and lists).

    A string that is exactly one ``{{ expression }}`` keeps the expression's native type.

    Raises:
        TemplateError: a template fails to parse or render (e.g. an undefined variable), or goes over what one
            render may cost (``TemplateLimitExceeded``, see ``flowline.domain.template_limits``).
    """
    with budgeted():
        return _render(value, context, _ENVIRONMENT)


# Compiled templates and expressions, by their text: at most this many of each, compiled from at most this
# much text (a compiled template grows with its text, and a definition's strings may be long).
_COMPILED_CACHED = 4096
_COMPILED_CACHED_CHARACTERS = 16 * 1024 * 1024


def _text_size(environment: BoundedSandbox, text: str) -> int:
    return len(text)


@memoize(max_entries=_COMPILED_CACHED, max_bytes=_COMPILED_CACHED_CHARACTERS, size_of=_text_size)
def _compiled_expression(environment: BoundedSandbox, expression: str) -> Any:
    return environment.expression(expression)


@memoize(max_entries=_COMPILED_CACHED, max_bytes=_COMPILED_CACHED_CHARACTERS, size_of=_text_size)
def _compiled_template(environment: BoundedSandbox, text: str) -> jinja2.Template:
    return environment.template(text)


def _render(value: Any, context: Mapping[str, Any], environment: BoundedSandbox) -> Any:
    if isinstance(value, str):
        if not _is_template(value):
            return value
        try:
            expression = _single_expression(value)
            if expression is not None:
                result = _compiled_expression(environment, expression)(**context)
                return _defined(result) if environment is _ENVIRONMENT else result
            return _compiled_template(environment, value).render(**context)
        except Exception as err:  # jinja2 errors, and Python's own from expressions (1/0, "7" + 1, None > 3)
            raise TemplateError(f"template {value!r} failed: {type(err).__name__}: {err}") from err
    if isinstance(value, Mapping):
        return {key: _render(item, context, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, context, environment) for item in value]
    return value


def _defined(value: Any) -> Any:
    """``value`` with no undefined part: a native result may hide an undefined name inside a literal."""
    if isinstance(value, jinja2.Undefined):
        _raise_undefined_error(value)
    elif callable(value):  # `input.items` finds dict.items before the key "items": say so
        raise TemplateError(f"the expression gives a function ({value!r}), not a value; for a key, write x['key']")
    elif isinstance(value, Mapping):
        for item in value.values():
            _defined(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _defined(item)
    return value


def _raise_undefined_error(value: jinja2.Undefined) -> NoReturn:
    """Raise jinja2's ``UndefinedError`` naming what ``value`` stands for ("'x' is undefined", "… has no attribute").

    jinja2 has no public function raising it (the private ``_fail_with_undefined_error`` does); a
    ``StrictUndefined``, what strict templates give, raises it when printed, as jinja2 documents.
    tests/unit/shared/test_templating.py fails if an upgrade stops it.
    """
    str(value)
    raise AssertionError(f"jinja2 printed an undefined value without raising: {type(value).__name__}")


def condition_template(expression: str) -> str:
    """A ``when`` condition as a template: bare expressions (``input.go``) are wrapped in ``{{ }}``."""
    return expression if _is_template(expression) else "{{ " + expression + " }}"


def render_condition(expression: str, context: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` condition (a template or bare expression) to a boolean.

    Raises:
        TemplateError: the condition fails to render.
    """
    with budgeted():
        result = _render(condition_template(expression), context, _LENIENT_ENVIRONMENT)
    if isinstance(result, jinja2.Undefined):
        return False
    if isinstance(result, str):
        return result.strip().lower() not in ("", "false", "0", "none", "no")
    return bool(result)
