"""The CLI's own logic without an api: tables, durations, configuration precedence, usage errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from flowline_client.cli import main
from flowline_client.cli.arguments import UsageError
from flowline_client.cli.bulk import progress_bar
from flowline_client.cli.config import DEFAULT_API_URL, Config, ConfigError, resolve_config
from flowline_client.cli.live import ExecutionView, event_line, print_log_page
from flowline_client.cli.output import Output, duration, format_table, painted
from flowline_client.cli.workflows import pack_files
from flowline_client.models import BulkOperation, Execution, StepExecution, StreamEvent, TaskLog, TaskLogPage

PROFILES = """
default_profile = "dev"

[profiles.dev]
api_url = "http://dev:8000"
tenant = "dev"
api_key = "fl_dev_key"

[profiles.prod]
api_url = "https://prod.example.com"
tenant = "acme"
api_key = "fl_prod_key"
"""
NO_FLAGS: dict[str, str | None] = {"api_url": None, "tenant": None, "api_key": None}


def test_a_table_aligns_its_columns_on_the_widest_cell() -> None:
    table = format_table(
        ["CHILD ID", "KIND", "STATUS", "CREATED"],
        [
            ["660e8400-0001", "process-order", "COMPLETED", "2024-01-15 10:30:00"],
            ["660e8400-0002", "ship", "FAILED", "-"],
        ],
    )

    assert table.splitlines() == [
        "CHILD ID       KIND           STATUS     CREATED",
        "660e8400-0001  process-order  COMPLETED  2024-01-15 10:30:00",
        "660e8400-0002  ship           FAILED     -",
    ]


def test_colours_paint_the_status_without_moving_the_columns() -> None:
    rows = [["1", "FAILED", "1.2s"], ["2", "COMPLETED", "-"]]

    coloured = format_table(["ATTEMPT", "STATUS", "DURATION"], rows, colour=True).splitlines()

    assert coloured[1] == f"1        {painted('FAILED', 'red')}     1.2s"
    assert coloured[2] == f"2        {painted('COMPLETED', 'green')}  -"


@pytest.mark.parametrize(
    ("milliseconds", "shown"),
    [(None, "-"), (350, "350ms"), (12_500, "12.5s"), (187_000, "3m07s"), (7_500_000, "2h05m")],
)
def test_durations_read_at_a_glance(milliseconds: int | None, shown: str) -> None:
    assert duration(milliseconds) == shown


@pytest.fixture
def config_file(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "config.toml"
    path.write_text(PROFILES)
    return {"FLOWLINE_CONFIG": str(path)}


def test_flags_beat_the_environment_which_beats_the_default_profile(config_file: dict[str, str]) -> None:
    environ = {**config_file, "FLOWLINE_TENANT": "from-env", "FLOWLINE_API_KEY": "fl_env_key"}

    config = resolve_config({**NO_FLAGS, "api_key": "fl_flag_key"}, environ, None)

    assert config == Config(api_url="http://dev:8000", tenant="from-env", api_key="fl_flag_key")


def test_a_profile_named_on_the_command_line_beats_the_environment(config_file: dict[str, str]) -> None:
    environ = {**config_file, "FLOWLINE_API_URL": "http://dev:8000", "FLOWLINE_API_KEY": "fl_dev_key"}

    config = resolve_config(NO_FLAGS, environ, "prod")

    assert config == Config(api_url="https://prod.example.com", tenant="acme", api_key="fl_prod_key")


def test_a_named_profile_never_takes_the_key_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[profiles.prod]\napi_url = "https://prod.example.com"\ntenant = "acme"\n')
    dev_env = {"FLOWLINE_CONFIG": str(path), "FLOWLINE_API_KEY": "fl_dev_key", "FLOWLINE_TENANT": "dev"}

    by_flag = resolve_config(NO_FLAGS, dev_env, "prod")
    by_variable = resolve_config(NO_FLAGS, {**dev_env, "FLOWLINE_PROFILE": "prod"}, None)

    assert by_flag == by_variable == Config(api_url="https://prod.example.com", tenant="acme", api_key=None)


def test_without_a_config_file_the_environment_is_enough(tmp_path: Path) -> None:
    environ = {"FLOWLINE_CONFIG": str(tmp_path / "absent.toml"), "FLOWLINE_TENANT": "dev"}

    assert resolve_config(NO_FLAGS, environ, None) == Config(api_url=DEFAULT_API_URL, tenant="dev", api_key=None)


def test_an_unknown_profile_or_no_tenant_is_a_configuration_error(config_file: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no profile 'staging'"):
        resolve_config(NO_FLAGS, config_file, "staging")
    with pytest.raises(ConfigError, match="no tenant"):
        resolve_config(NO_FLAGS, {"FLOWLINE_CONFIG": str(tmp_path / "absent.toml")}, None)


def test_usage_errors_exit_with_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"FLOWLINE_CONFIG": str(tmp_path / "absent.toml"), "FLOWLINE_TENANT": "dev"}

    assert main(["workflows", "frobnicate"], environ) == 2
    assert main(["workflows", "execute", "demo.hello", "--input", "{not json"], environ) == 2
    assert main(["executions", "list"], {"FLOWLINE_CONFIG": str(tmp_path / "absent.toml")}) == 2

    assert "--input: not valid JSON" in capsys.readouterr().err


def test_a_pack_folder_sends_its_manifest_and_workflow_files_only(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "pack.yml").write_text("ref: demo\n")
    (tmp_path / "workflows" / "hello.yaml").write_text("definition: {steps: []}\n")
    (tmp_path / "workflows" / "notes.txt").write_text("mine")
    (tmp_path / "actions.py").write_text("async def post(step_input, context): ...\n")

    assert pack_files(tmp_path) == {"pack.yml": "ref: demo\n", "workflows/hello.yaml": "definition: {steps: []}\n"}
    with pytest.raises(UsageError, match=r"no pack\.yaml"):
        pack_files(tmp_path / "workflows")


def _event(event: str, step_id: str | None, seconds: float, **data: object) -> StreamEvent:
    moment = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC) + timedelta(seconds=seconds)
    return StreamEvent(
        event=event,
        data=dict(data),
        timestamp_ms=int(moment.timestamp() * 1000),
        execution_id="e1",
        sequence=1,
        step_id=step_id,
        occurred_at=moment,
    )


def _execution(*steps: StepExecution) -> Execution:
    moment = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    return msgspec.convert(
        {
            "id": "e1", "workflowRef": "demo.nap", "workflowVersion": 2, "status": "running", "error": None,
            "triggeredBy": "api", "parentExecutionId": None, "parentStepId": None, "rootExecutionId": "e1",
            "idempotencyKey": None, "metadata": {}, "tags": [], "createdAt": moment, "startedAt": moment,
            "completedAt": None, "cancelledAt": None, "cancelledBy": None, "durationMs": None, "input": {},
            "output": None, "stepCounts": {}, "steps": [msgspec.to_builtins(step) for step in steps],
        },
        Execution,
    )  # fmt: skip


def test_the_watch_view_follows_step_events_and_times_running_steps() -> None:
    pending = msgspec.convert(
        {
            "taskId": "t1", "executionId": "e1", "stepId": "nap", "type": "sleep", "status": "pending",
            "generation": 1, "attempts": 0, "input": None, "output": None, "error": None,
            "createdAt": "2026-01-01T10:00:00Z", "scheduledAt": None, "startedAt": None, "completedAt": None,
            "durationMs": None,
        },
        StepExecution,
    )  # fmt: skip
    view = ExecutionView(_execution(pending))
    out = Output(json=False, colour=False)

    view.apply(_event("TASK_STARTED", "nap", 1, status="running", attempt=1))
    running = view.render(out, datetime(2026, 1, 1, 10, 0, 3, tzinfo=UTC))
    view.apply(_event("TASK_COMPLETED", "nap", 5.5, status="completed", attempt=1))
    view.apply(_event("WORKFLOW_COMPLETED", None, 6, status="completed"))
    done = view.render(out, datetime(2026, 1, 1, 10, 0, 6, tzinfo=UTC))

    assert running.splitlines() == [
        "Execution e1  demo.nap v2  RUNNING  3.0s",
        "",
        "STEP  TYPE   STATUS   ATTEMPTS  DURATION",
        "nap   sleep  RUNNING  1         2.0s…",
    ]
    assert done.splitlines()[0] == "Execution e1  demo.nap v2  COMPLETED  6.0s"
    assert done.splitlines()[-1] == "nap   sleep  COMPLETED  1         4.5s"


def test_an_event_line_names_the_step_attempt_and_error() -> None:
    failed = _event("TASK_FAILED", "charge", 0.25, status="failed", attempt=2, error={"type": "Fail", "message": "no"})

    assert event_line(failed) == "10:00:00.250  TASK_FAILED               charge  attempt 2  Fail: no"


def test_the_progress_bar_counts_every_handled_execution() -> None:
    operation = msgspec.convert(
        {
            "id": "o1", "kind": "cancel", "status": "running", "dryRun": False, "note": None, "total": 10,
            "succeeded": 4, "failed": 1, "skipped": 0, "errors": [], "createdAt": "2026-01-01T10:00:00Z",
            "startedAt": None, "completedAt": None,
        },
        BulkOperation,
    )  # fmt: skip

    assert progress_bar(operation) == ("[###############...............]  5/10  succeeded 4  failed 1  skipped 0")


def _record(message: str, *, matched: bool | None = None, group: int | None = None) -> TaskLog:
    moment = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    return TaskLog(
        id=message,
        level="INFO",
        message=message,
        timestamp=moment,
        step_id="s",
        attempt=1,
        matched=matched,
        group=group,
    )


def test_a_search_with_context_prints_as_grep_does(capsys: pytest.CaptureFixture[str]) -> None:
    page = TaskLogPage(
        logs=[
            _record("before", matched=False, group=0),
            _record("disk full", matched=True, group=0),
            _record("disk full again", matched=True, group=1),
            _record("after", matched=False, group=1),
        ],
        total=None,
        limit=2,
        offset=0,
        next_cursor="abc",
    )

    print_log_page(page, Output(json=False, colour=False))

    printed = capsys.readouterr()
    assert printed.out.splitlines() == [
        "  2026-01-01T10:00:00.000Z INFO  [s#1] before",
        "> 2026-01-01T10:00:00.000Z INFO  [s#1] disk full",
        "--",
        "> 2026-01-01T10:00:00.000Z INFO  [s#1] disk full again",
        "  2026-01-01T10:00:00.000Z INFO  [s#1] after",
    ]
    assert printed.err == "the search goes on; more: --cursor abc\n"


def test_log_options_that_do_not_go_together_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"FLOWLINE_CONFIG": str(tmp_path / "absent.toml"), "FLOWLINE_TENANT": "dev"}

    assert main(["executions", "logs", "some-id", "--context", "2"], environ) == 2
    assert "--context: shows records around the matches of --grep" in capsys.readouterr().err
    assert main(["tasks", "logs", "some-id", "--grep", "disk", "--follow"], environ) == 2
    assert "--follow prints every record as it comes" in capsys.readouterr().err
