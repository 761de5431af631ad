"""Every setting has its row in docs/operations.md, so the configuration table stays whole."""

from __future__ import annotations

from pathlib import Path

from flowline.settings import Settings, env_name

OPERATIONS = Path(__file__).parents[3] / "docs" / "operations.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    rows = [line for line in OPERATIONS.read_text().splitlines() if line.startswith("| `FLOWLINE_")]
    documented = " ".join(row.split(" | ")[0] for row in rows)
    missing = [env_name(field) for field in Settings.__struct_fields__ if f"`{env_name(field)}`" not in documented]
    assert missing == []
