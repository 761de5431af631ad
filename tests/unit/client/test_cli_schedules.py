"""``flowline schedules create``: the body it sends, from flags, a YAML file, or both."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowline_client.cli.arguments import UsageError
from flowline_client.cli.main import build_parser
from flowline_client.cli.schedules import _body, _changes


def _create(*argv: str) -> dict[str, object]:
    return _body(build_parser().parse_args(["schedules", "create", *argv]))


def test_flags_name_the_api_fields() -> None:
    body = _create(
        "--name", "nightly", "--workflow", "billing.invoice", "--cron", "0 3 * * *", "--timezone", "Europe/Berlin",
        "--input", '{"region": "eu"}', "--overlap", "buffer_one", "--catchup-window", "0", "--tag", "a", "--tag", "b",
        "--metadata", "team=billing", "--paused",
    )  # fmt: skip

    assert body == {
        "name": "nightly",
        "workflowRef": "billing.invoice",
        "cron": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "input": {"region": "eu"},
        "overlap": "buffer_one",
        "catchupWindow": "0",
        "tags": ["a", "b"],
        "metadata": {"team": "billing"},
        "paused": True,
    }


def test_a_file_gives_the_schedule_and_flags_override_it(tmp_path: Path) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text("name: nightly\nworkflowRef: billing.invoice\ninterval: 15m\ninput:\n  region: eu\n")

    body = _create("-f", str(path), "--interval", "5m")

    assert body == {"name": "nightly", "workflowRef": "billing.invoice", "interval": "5m", "input": {"region": "eu"}}


def test_a_schedule_needs_a_name_and_a_workflow(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        _create("--cron", "@daily")
    path = tmp_path / "list.yaml"
    path.write_text("- name: nightly\n")
    with pytest.raises(UsageError):
        _create("-f", str(path))


def _update(*argv: str) -> dict[str, object]:
    return _changes(build_parser().parse_args(["schedules", "update", "nightly", *argv]))


def test_update_sends_only_the_fields_given() -> None:
    assert _update("--interval", "5m", "--overlap", "allow", "--no-paused") == {
        "interval": "5m",
        "overlap": "allow",
        "paused": False,
    }
    assert _update("--paused") == {"paused": True}


def test_update_from_a_file_clears_a_field_with_null(tmp_path: Path) -> None:
    path = tmp_path / "changes.yaml"
    path.write_text("description: null\ncron: '0 4 * * *'\n")

    assert _update("-f", str(path), "--timezone", "UTC") == {
        "description": None,
        "cron": "0 4 * * *",
        "timezone": "UTC",
    }


def test_update_needs_something_to_change() -> None:
    with pytest.raises(UsageError):
        _update()
