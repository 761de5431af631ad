"""The CLI's own logic without an api: tables, durations, configuration precedence, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowline.cli import main
from flowline.cli.arguments import UsageError
from flowline.cli.config import DEFAULT_API_URL, Config, ConfigError, resolve_config
from flowline.cli.output import duration, format_table, painted
from flowline.cli.workflows import pack_files

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
