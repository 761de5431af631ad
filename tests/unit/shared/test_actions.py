"""Built-in actions and the entry-point group through which packs add theirs."""

from __future__ import annotations

from typing import Any

import pytest
from flowline.domain import actions
from flowline.domain.actions import BUILTIN_ACTIONS, ActionContext, ActionFailed, load_actions


class RecordingLogger:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def log(self, level: str, message: str, **metadata: Any) -> None:
        self.records.append((level, message, metadata))


@pytest.fixture
def logger() -> RecordingLogger:
    return RecordingLogger()


@pytest.fixture
def context(logger: RecordingLogger) -> ActionContext:
    return ActionContext(execution_id="e-1", step_id="s", attempt=1, idempotency_key="e-1:s:1", logger=logger)


async def run(name: str, step_input: Any, context: ActionContext) -> Any:
    return await load_actions()[name](step_input, context)


@pytest.mark.parametrize("value", [{"a": [1, 2]}, "text", 3, None, [1, {"b": None}]])
async def test_echo_outputs_its_input(value: Any, context: ActionContext) -> None:
    assert await run("core.echo", value, context) == value


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], "x"])
async def test_transform_outputs_the_rendered_input(value: Any, context: ActionContext) -> None:
    assert await run("core.transform", value, context) == value


async def test_noop_outputs_null_and_logs_nothing(context: ActionContext, logger: RecordingLogger) -> None:
    assert await run("core.noop", {"anything": 1}, context) is None
    assert logger.records == []


async def test_log_writes_the_message_through_the_context_logger(
    context: ActionContext, logger: RecordingLogger
) -> None:
    output = await run("core.log", {"message": "hello", "level": "warn"}, context)

    assert output == {"logged": "hello"}
    assert logger.records == [("WARN", "hello", {})]


async def test_log_defaults_to_info(context: ActionContext, logger: RecordingLogger) -> None:
    await run("core.log", {"message": "plain"}, context)

    assert logger.records == [("INFO", "plain", {})]


@pytest.mark.parametrize(("value", "text"), [("just text", "just text"), (42, "42"), ([1, 2], "[1, 2]")])
async def test_log_writes_a_non_mapping_input_as_text(
    value: Any, text: str, context: ActionContext, logger: RecordingLogger
) -> None:
    assert await run("core.log", value, context) == {"logged": text}
    assert logger.records == [("INFO", text, {})]


async def test_fail_raises_a_non_retryable_failure_by_default(context: ActionContext) -> None:
    with pytest.raises(ActionFailed, match=r"^card declined$") as caught:
        await run("core.fail", {"message": "card declined"}, context)

    assert caught.value.retryable is False


async def test_fail_may_be_retryable(context: ActionContext) -> None:
    with pytest.raises(ActionFailed, match=r"^flaky$") as caught:
        await run("core.fail", {"message": "flaky", "retryable": True}, context)

    assert caught.value.retryable is True


@pytest.mark.parametrize(("value", "message"), [(None, "core.fail"), ("boom", "boom"), ({}, "core.fail")])
async def test_fail_message_defaults(value: Any, message: str, context: ActionContext) -> None:
    with pytest.raises(ActionFailed) as caught:
        await run("core.fail", value, context)

    assert str(caught.value) == message
    assert caught.value.retryable is False


def test_action_failed_is_retryable_unless_told_otherwise() -> None:
    assert ActionFailed("x").retryable is True
    assert ActionFailed("x", retryable=False).retryable is False


def test_load_actions_contains_the_builtins() -> None:
    loaded = load_actions()

    assert {"core.echo", "core.noop", "core.log", "core.fail", "core.transform"} <= set(loaded)
    for name, action in BUILTIN_ACTIONS.items():
        assert loaded[name] is action


class FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self._target = target

    def load(self) -> Any:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_packs_add_actions_and_a_broken_pack_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    async def post_message(step_input: Any, context: ActionContext) -> Any:
        return "posted"

    groups: list[str] = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        groups.append(group)
        return [FakeEntryPoint("slack.post_message", post_message), FakeEntryPoint("broken.pack", ImportError("x"))]

    monkeypatch.setattr(actions, "entry_points", fake_entry_points)

    loaded = load_actions()

    assert groups == ["flowline.actions"]
    assert loaded["slack.post_message"] is post_message
    assert "broken.pack" not in loaded
    assert set(BUILTIN_ACTIONS) <= set(loaded)


def test_load_actions_returns_a_fresh_mapping() -> None:
    load_actions()["core.echo"] = None  # type: ignore[assignment]

    assert load_actions()["core.echo"] is BUILTIN_ACTIONS["core.echo"]
