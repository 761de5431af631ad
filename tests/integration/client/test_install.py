"""The client distribution installs on its own: `flowline` and `flowline_client` work without the server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# `uv run` names its own binary in UV; elsewhere uv is on PATH or where pip --user put it.
UV = os.environ.get("UV") or shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
SERVER_DISTRIBUTIONS = {"flowline", "litestar", "uvicorn", "asyncpg", "aiokafka", "sqlalchemy", "alembic"}

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(UV is None, reason="uv is not installed (`make bootstrap` installs it)"),
]


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=240, check=False)


def test_the_client_alone_gives_the_command_and_the_package_without_the_server(tmp_path: Path) -> None:
    assert UV is not None
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    created = _run(UV, "venv", "--quiet", "--python", sys.executable, venv)
    assert created.returncode == 0, created.stderr
    # From the workspace path, as `pip install ./client` would; uv finds flowline-schemas beside it in the workspace.
    installed = _run(UV, "pip", "install", "--quiet", "--python", python, ROOT / "client")
    assert installed.returncode == 0, installed.stderr

    listed = _run(UV, "pip", "list", "--python", python, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    distributions = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert {"flowline-client", "flowline-schemas", "httpx", "msgspec"} <= distributions
    assert distributions & SERVER_DISTRIBUTIONS == set()

    helped = _run(venv / "bin" / "flowline", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Operate Flowline from a terminal." in helped.stdout
    assert "workflows" in helped.stdout
    imported = _run(python, "-c", "import flowline_client, flowline_client.cli, flowline_client.models")
    assert imported.returncode == 0, imported.stderr
