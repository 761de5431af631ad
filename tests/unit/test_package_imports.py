"""Each member imports only what its distribution installs: the client never the server, nothing the dev stack."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE_SOURCES = [ROOT / "shared" / "src", *sorted((ROOT / "services").glob("*/src"))]


def imported_packages(source: Path) -> dict[str, set[Path]]:
    """The top-level package of every absolute import under ``source`` (lazy ones inside functions too)."""
    packages: dict[str, set[Path]] = {}
    for path in source.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                packages.setdefault(name.partition(".")[0], set()).add(path.relative_to(ROOT))
    return packages


@pytest.mark.parametrize("source", SERVICE_SOURCES, ids=lambda source: source.parent.name)
def test_no_runtime_package_imports_the_dev_stack(source: Path) -> None:
    assert imported_packages(source).get("flowline_devstack", set()) == set()


@pytest.mark.parametrize(
    ("member", "allowed"),
    [
        ("schemas", {"msgspec", "flowline_schemas"}),
        ("client", {"httpx", "msgspec", "flowline_schemas", "flowline_client"}),
    ],
)
def test_the_client_and_its_schemas_import_nothing_of_the_server(member: str, allowed: set[str]) -> None:
    packages = imported_packages(ROOT / member / "src")
    outside = {name: files for name, files in packages.items() if name not in allowed | sys.stdlib_module_names}
    assert outside == {}
