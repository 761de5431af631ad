"""What one render of a workflow's templates may cost: time, loop iterations, and the size of what it makes.

Templates render inside an execution's state change, on the executor's event loop: a template that never ends
(``{% for i in range(100000) %}{% for j in range(100000) %}…``) or makes a huge value (``'a' * 10**9``) would
stop the executor from heartbeating, and each executor the message moves to after it. So every loop iteration,
operator, call, filter and piece of output checks the render's budget, and every value one makes is checked
against ``MAX_VALUE_CHARS`` before (where it can be known) or after it is made; going over raises
``TemplateLimitExceeded``, which fails the step and is not retried.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDER_SECONDS = 1.0
LOOP_ITERATIONS = 1_000_000
MAX_VALUE_CHARS = 1_048_576  # a string's characters, a list's items, an output's characters
MAX_POWER_BITS = 65_536  # of an integer a ** b makes
# Filters whose width argument sets the size of what they make (`'x' | center(10**9)`).
_WIDTH_FILTERS = frozenset({"center", "indent"})


class TemplateLimitExceeded(Exception):
    """A template went over what one render may cost."""


class _Budget:
    def __init__(self) -> None:
        self.deadline = time.monotonic() + RENDER_SECONDS
        self.iterations = LOOP_ITERATIONS

    def spend(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitExceeded(f"the templates took more than {RENDER_SECONDS:g} s to render")


_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("template_budget")


@contextlib.contextmanager
def budgeted() -> Iterator[None]:
    """One render's budget, shared by every template rendered within."""
    token = _budget.set(_Budget())
    try:
        yield
    finally:
        _budget.reset(token)


def _spend() -> None:
    budget = _budget.get(None)
    if budget is not None:
        budget.spend()


def _sized(value: Any) -> Any:
    """``value``, unless it is a string or collection over ``MAX_VALUE_CHARS``."""
    if isinstance(value, Sized) and not isinstance(value, jinja2.Undefined) and len(value) > MAX_VALUE_CHARS:
        raise TemplateLimitExceeded(f"a value of {len(value)} items or characters; the limit is {MAX_VALUE_CHARS}")
    return value


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``iterable`` (a template's ``for``), spending the render's loop iterations and time."""
    budget = _budget.get(None)
    for item in iterable:
        if budget is not None:
            budget.iterations -= 1
            if budget.iterations < 0:
                raise TemplateLimitExceeded(f"the templates ran more than {LOOP_ITERATIONS} loop iterations")
            budget.spend()
        yield item


def _repeated_size(left: Any, right: Any) -> int:
    """The size of ``left * right`` for a sequence and a count (0 for anything else)."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, Sized) and isinstance(count, int) and not isinstance(count, bool):
            return len(sequence) * count
    return 0


def _check_binop(symbol: str, left: Any, right: Any) -> None:
    if symbol == "*" and _repeated_size(left, right) > MAX_VALUE_CHARS:
        raise TemplateLimitExceeded(
            f"'*' would make {_repeated_size(left, right)} items; the limit is {MAX_VALUE_CHARS}"
        )
    if symbol == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if abs(left) > 1 and right * abs(left).bit_length() > MAX_POWER_BITS:
            raise TemplateLimitExceeded(f"'**' would make a number of more than {MAX_POWER_BITS} bits")
    if symbol == "+" and isinstance(left, Sized) and isinstance(right, Sized):
        _sized(left), _sized(right)


def _check_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a count or width argument over the size limit (``center(10**9)``, ``ljust``, ``indent``…)."""
    for argument in (*args, *kwargs.values()):
        if isinstance(argument, int) and not isinstance(argument, bool) and argument > MAX_VALUE_CHARS:
            raise TemplateLimitExceeded(f"an argument of {argument}; the limit is {MAX_VALUE_CHARS}")


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # functools.wraps copies the pass_context/pass_environment marks jinja2 reads from the function.
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _spend()
        if name in _WIDTH_FILTERS:
            _check_arguments(args[1:], kwargs)
        return _sized(function(*args, **kwargs))

    return bounded


@jinja2.pass_eval_context
def _bounded_replace(context: Any, value: Any, old: Any, new: Any, count: int | None = None) -> Any:
    text, old_text = str(value), str(old)
    occurrences = text.count(old_text) if old_text else len(text) + 1
    made = len(text) + occurrences * len(str(new))
    if made > MAX_VALUE_CHARS:
        raise TemplateLimitExceeded(f"'replace' would make {made} characters; the limit is {MAX_VALUE_CHARS}")
    return _REPLACE(context, value, old, new, count)


def _joined(pieces: Iterable[str]) -> str:
    """The output of a render, refused once it grows over ``MAX_VALUE_CHARS``."""
    kept: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_VALUE_CHARS:
            raise TemplateLimitExceeded(f"the output grew over {MAX_VALUE_CHARS} characters")
        kept.append(piece)
    return "".join(kept)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox, with every render's cost bounded (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    # What Template.render joins the output with (jinja2's Environment.concat, "".join by default).
    concat = staticmethod(_joined)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.update(_flowline_counted=_counted, _flowline_sized=_sized)
        self.filters = {name: _bounded_filter(name, function) for name, function in self.filters.items()}
        self.filters["replace"] = _bounded_filter("replace", _bounded_replace)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        """Check that the operator's result stays within the limits before making it."""
        _spend()
        _check_binop(operator, left, right)
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Check a call's count and width arguments and the size of what it makes."""
        _spend()
        _check_arguments(args, kwargs)
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def template(self, source: str) -> jinja2.Template:
        """A template of ``source`` whose loops, concatenations and output are bounded."""
        tree = self.parse(source)
        _instrument(tree)
        return self.from_string(tree)

    def expression(self, source: str) -> TemplateExpression:
        """An expression of ``source`` (as ``compile_expression(source, undefined_to_none=False)``), bounded."""
        parser = Parser(self, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            raise jinja2.TemplateSyntaxError("chunk after expression", parser.stream.current.lineno, None, None)
        tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1)
        _instrument(tree)
        tree.set_environment(self)
        return TemplateExpression(self.from_string(tree), undefined_to_none=False)


def _instrument(tree: nodes.Template) -> None:
    """Make every ``for`` count its iterations and every ``~`` check the size of its parts."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name("_flowline_counted", "load"), [loop.iter], [], None, None)
    for concat in tree.find_all(nodes.Concat):
        concat.nodes = [
            nodes.Call(nodes.Name("_flowline_sized", "load"), [part], [], None, None) for part in concat.nodes
        ]


_REPLACE = jinja2.Environment().filters["replace"]
