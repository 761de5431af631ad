from __future__ import annotations

import re
import stat
from pathlib import Path

from flowline.domain.agents import auth_cipher
from flowline.settings import load_settings
from flowline_devstack.cli import ensure_secret_key, render_banner, render_dev_env


def test_dev_env_exports_what_the_cli_and_tests_need() -> None:
    text = render_dev_env(
        api_url="http://127.0.0.1:8000",
        tenant="dev",
        api_key="fl_abc_def",
        database_url="postgresql://flowline@127.0.0.1:55432/flowline",
        kafka_bootstrap="127.0.0.1:19092",
    )
    assert text.splitlines() == [
        "export FLOWLINE_API_URL=http://127.0.0.1:8000",
        "export FLOWLINE_TENANT=dev",
        "export FLOWLINE_API_KEY=fl_abc_def",
        "export FLOWLINE_DATABASE_URL=postgresql://flowline@127.0.0.1:55432/flowline",
        "export FLOWLINE_KAFKA_BOOTSTRAP=127.0.0.1:19092",
    ]


def test_dev_env_quotes_values_for_the_shell() -> None:
    text = render_dev_env(
        api_url="http://x", tenant="a b", api_key="k", database_url="p://u:p$w@h/d", kafka_bootstrap="k"
    )
    assert "export FLOWLINE_TENANT='a b'" in text
    assert "export FLOWLINE_DATABASE_URL='p://u:p$w@h/d'" in text


def test_the_banner_lists_every_service_url_and_the_env_hint() -> None:
    settings = load_settings({"FLOWLINE_API_PORT": "8100", "FLOWLINE_HTTP_HOST": "0.0.0.0"})
    banner = render_banner(
        settings=settings,
        api_key="fl_abc_def",
        database_url="postgresql://db",
        kafka_bootstrap="127.0.0.1:19092",
        dev_env_path=Path(".flowline/dev.env"),
        pids={"api": 4100, "executor": 4101, "broker": 4200},
    )
    assert "http://127.0.0.1:8100" in banner
    for name in ("executor", "scheduler", "log-ingest", "postgresql", "broker", "tenant"):
        assert f"  {name} " in banner
    assert re.search(r"  api  +http://127.0.0.1:8100  +pid 4100\n", banner)
    assert re.search(r"  broker  +127.0.0.1:19092  +pid 4200\n", banner)
    assert "flowline-dev ps" in banner
    assert "fl_abc_def" in banner
    assert re.search(r"  console +http://127.0.0.1:8100/ui/ ", banner)
    assert "source .flowline/dev.env" in banner


def test_the_dev_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret.key"

    first = ensure_secret_key(path)

    auth_cipher(first)  # a usable Fernet key
    assert ensure_secret_key(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
