"""The workflow definition model (docs/architecture.md §7) and its validator."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Annotated, Any, Literal

import msgspec

from flowline.domain.templating import check_template, condition_template
from flowline.errors import TooLarge, ValidationFailed

StepType = Literal["action", "agent", "http", "sleep", "wait", "workflow"]
PROMISE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
Seconds = Annotated[float, msgspec.Meta(gt=0)]


def parse_duration(value: float | str) -> float:
    """Seconds in ``value``: a number of seconds, or a string like ``500ms``, ``90s``, ``1h30m``, ``2d``.

    Raises:
        ValueError: the string is not a duration, or the duration is not positive.
    """
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"{value!r} is not a duration (examples: 30, '500ms', '90s', '1h30m', '2d')")
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, not {value!r}")
    return seconds


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """How often and how patiently a failed step is tried again."""

    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial_interval: Seconds = 1.0
    max_interval: Seconds = 60.0
    jitter: bool = True

    def delay(self, failed_attempt: int, randomness: float) -> float:
        """Seconds to wait after attempt ``failed_attempt`` failed; ``randomness`` in [0, 1) spreads retries.

        Exponential backoff doubles the interval each attempt up to ``max_interval``; jitter draws the wait
        from the upper half of it, so that many failures at once do not retry in lockstep.
        """
        interval = self.initial_interval
        if self.backoff == "exponential":
            interval *= 2 ** (failed_attempt - 1)
        interval = min(interval, self.max_interval)
        return interval * (0.5 + 0.5 * randomness) if self.jitter else interval


SECRET_MASK = "***"


class SecretValue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A header value kept secret, ``{"secret": "…"}``; never a template.

    The plaintext travels only in the request that sets it: at rest ``secret`` holds a Fernet token (the api
    seals it), wherever a definition or step input is shown it is ``***``, and only the executor opens it,
    when it sends the request. Sending ``***`` back keeps the stored value.
    """

    secret: Annotated[str, msgspec.Meta(min_length=1)]


class HttpRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """What an ``http`` step sends; every string may be a template. No expected status means any 2xx."""

    method: str = "GET"
    url: str
    headers: dict[str, str | SecretValue] = {}
    body: Any = None
    expected_status: list[int] = []


class StepDefinition(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """One node of the workflow graph."""

    id: str
    type: StepType
    action: str | None = None
    # agent: the name of the registered agent to call with the step's input.
    agent: str | None = None
    needs: list[str] = []
    input: Any = None
    when: str | None = None
    retry: RetryPolicy | None = None
    timeout: Seconds | None = None
    continue_on_failure: bool = False
    # http: the request to send.
    request: HttpRequest | None = None
    # workflow: the child workflow's ref (``<pack>.<name>``) and version (default: its latest).
    workflow: str | None = None
    version: int | None = None
    # wait: the name of the promise to wait for (default: the step id); ``timeout`` bounds the wait.
    promise: str | None = None
    # sleep: how long (seconds or a string like "1h30m"), or until when (an ISO 8601 timestamp template).
    duration: float | str | None = None
    until: str | None = None


class WorkflowDefinition(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A workflow's graph of steps and the template of its output."""

    steps: list[StepDefinition]
    output: Any = None
    # Seconds an execution may take from its start; past that it fails and its running steps are cancelled.
    timeout: Seconds | None = None


def request_secrets(request: HttpRequest | None) -> dict[str, str]:
    """The secret header values of an http step's request by header name (sealed, when read from storage)."""
    if request is None:
        return {}
    return {name: value.secret for name, value in request.headers.items() if isinstance(value, SecretValue)}


def masked_request(request: HttpRequest) -> dict[str, Any]:
    """``request`` as JSON builtins with every secret header value masked (what is rendered, stored and shown)."""
    shown: dict[str, Any] = msgspec.to_builtins(request)
    shown["headers"] = {
        name: {"secret": SECRET_MASK} if isinstance(value, SecretValue) else value
        for name, value in request.headers.items()
    }
    return shown


def mask_definition(definition: Any) -> Any:
    """A stored definition (JSON builtins) as it may be shown: every secret header value ``{"secret": "***"}``."""
    if not isinstance(definition, dict) or not isinstance(definition.get("steps"), list):
        return definition
    steps = []
    for step in definition["steps"]:
        headers = (step.get("request") or {}).get("headers") if isinstance(step, dict) else None
        if isinstance(headers, dict) and any(isinstance(value, dict) for value in headers.values()):
            masked = {
                name: {"secret": SECRET_MASK} if isinstance(value, dict) else value for name, value in headers.items()
            }
            step = {**step, "request": {**step["request"], "headers": masked}}
        steps.append(step)
    return {**definition, "steps": steps}


def find_cycle(needs_by_step: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a closed path (``['a', 'b', 'a']``), or None when the graph is acyclic.

    Iterative depth-first search, so that long chains of steps cannot exhaust the recursion limit.
    """
    finished: set[str] = set()
    for root in needs_by_step:
        if root in finished:
            continue
        path: list[str] = [root]
        on_path = {root}
        pending = [iter(needs_by_step.get(root, []))]
        while pending:
            need = next(pending[-1], None)
            if need is None:
                finished.add(path[-1])
                on_path.discard(path.pop())
                pending.pop()
            elif need in on_path:
                return [*path[path.index(need) :], need]
            elif need not in finished:
                path.append(need)
                on_path.add(need)
                pending.append(iter(needs_by_step.get(need, [])))
    return None


def downstream(definition: WorkflowDefinition, step_id: str) -> set[str]:
    """``step_id`` and every step that needs it, directly or through others."""
    dependents: dict[str, list[str]] = {}
    for step in definition.steps:
        for need in step.needs:
            dependents.setdefault(need, []).append(step.id)
    found = {step_id}
    pending = [step_id]
    while pending:
        for dependent in dependents.get(pending.pop(), []):
            if dependent not in found:
                found.add(dependent)
                pending.append(dependent)
    return found


def _check_step_type(
    step: StepDefinition, pointer: str, *, known_actions: Collection[str], known_agents: Collection[str]
) -> None:
    """Check what ``step``'s type asks of it (its agent, sleep, request, child workflow, promise or action)."""
    if step.type == "agent":
        if not step.agent:
            raise ValidationFailed(
                f"step {step.id!r}: an agent step names its agent as agent: <name>", pointer=f"{pointer}/agent"
            )
        if step.agent not in known_agents:
            raise ValidationFailed(f"step {step.id!r}: unknown agent {step.agent!r}", pointer=f"{pointer}/agent")
    if step.type == "sleep":
        if (step.duration is None) == (step.until is None):
            raise ValidationFailed(
                f"step {step.id!r}: a sleep step needs exactly one of duration and until", pointer=pointer
            )
        if step.duration is not None:
            try:
                parse_duration(step.duration)
            except ValueError as err:
                raise ValidationFailed(f"step {step.id!r}: {err}", pointer=f"{pointer}/duration") from err
        check_template(step.until, f"{pointer}/until")
    if step.type == "http":
        if step.request is None:
            raise ValidationFailed(f"step {step.id!r}: an http step needs a request", pointer=pointer)
        method = step.request.method
        if "{{" not in method and method.upper() not in HTTP_METHODS:
            raise ValidationFailed(
                f"step {step.id!r}: unknown HTTP method {method!r}", pointer=f"{pointer}/request/method"
            )
        check_template(masked_request(step.request), f"{pointer}/request")
    if step.type == "workflow" and not (step.workflow and "." in step.workflow):
        raise ValidationFailed(
            f"step {step.id!r}: a workflow step names its child as workflow: <pack>.<name>",
            pointer=f"{pointer}/workflow",
        )
    if step.type == "wait" and step.promise is not None and not PROMISE_NAME.match(step.promise):
        raise ValidationFailed(
            f"step {step.id!r}: a promise name is 1 to 200 letters, digits, '_', '.', ':' or '-'",
            pointer=f"{pointer}/promise",
        )
    if step.type == "action" and step.action not in known_actions:
        raise ValidationFailed(f"step {step.id!r}: unknown action {step.action!r}", pointer=f"{pointer}/action")


def validate_definition(
    definition: WorkflowDefinition,
    *,
    known_actions: Collection[str],
    max_steps: int,
    known_agents: Collection[str] = (),
) -> None:
    """Check a definition beyond its shape; each failure names the step and the JSON pointer.

    ``known_agents`` are the names of the tenant's live agents (the api reads them from the agents table).

    Raises:
        ValidationFailed: duplicate ids, unknown needs, cycles, unknown types, actions or agents, bad templates.
        TooLarge: more steps than ``max_steps``.
    """
    if not definition.steps:
        raise ValidationFailed("a workflow needs at least one step", pointer="/definition/steps")
    if len(definition.steps) > max_steps:
        raise TooLarge(f"a workflow may have at most {max_steps} steps, this one has {len(definition.steps)}")
    seen: set[str] = set()
    for index, step in enumerate(definition.steps):
        pointer = f"/definition/steps/{index}"
        if not step.id or not step.id.replace("-", "_").isidentifier():
            raise ValidationFailed(
                f"step id {step.id!r} must be letters, digits, '_' or '-' and not start with a digit",
                pointer=f"{pointer}/id",
            )
        if step.id in seen:
            raise ValidationFailed(f"step id {step.id!r} is used twice", pointer=f"{pointer}/id")
        seen.add(step.id)
        _check_step_type(step, pointer, known_actions=known_actions, known_agents=known_agents)
        check_template(step.input, f"{pointer}/input")
        if step.when is not None:
            check_template(condition_template(step.when), f"{pointer}/when")
    for index, step in enumerate(definition.steps):
        for need_index, need in enumerate(step.needs):
            if need not in seen:
                raise ValidationFailed(
                    f"step {step.id!r} needs unknown step {need!r}",
                    pointer=f"/definition/steps/{index}/needs/{need_index}",
                )
    cycle = find_cycle({step.id: step.needs for step in definition.steps})
    if cycle:
        raise ValidationFailed(f"steps form a cycle: {' → '.join(cycle)}", pointer="/definition/steps")
    check_template(definition.output, "/definition/output")
