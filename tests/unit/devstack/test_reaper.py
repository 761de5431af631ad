from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from flowline_devstack.reaper import Reaper


def _wait_for(path: Path, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return path.exists()


def test_the_command_runs_when_the_owner_dies(tmp_path: Path) -> None:
    marker = tmp_path / "reaped"
    owner = f"from flowline_devstack.reaper import Reaper; import os; Reaper(['touch', {str(marker)!r}]); os._exit(0)"
    subprocess.run([sys.executable, "-c", owner], check=True)
    assert _wait_for(marker)


def test_a_cancelled_reaper_does_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "reaped"
    Reaper(["touch", str(marker)]).cancel()
    time.sleep(0.1)
    assert not marker.exists()
