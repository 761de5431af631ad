"""Production code keeps its shape (issue #22): short functions, modules under 600 lines, each with a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_SOURCES = [
    *sorted((ROOT / "services").glob("*/src")),
    ROOT / "shared" / "src",
    ROOT / "schemas" / "src",
    ROOT / "client" / "src",
    ROOT / "devstack" / "src",
]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def production_modules() -> list[Path]:
    """Every Python module of the production trees; Alembic migrations are generated history, not shaped code."""
    return [
        path
        for source in PRODUCTION_SOURCES
        for path in sorted(source.rglob("*.py"))
        if "migrations" not in path.relative_to(source).parts
    ]


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def test_the_production_trees_are_found() -> None:
    assert all(source.is_dir() for source in PRODUCTION_SOURCES)
    assert len(production_modules()) > 100


def test_no_function_is_over_80_lines() -> None:
    too_long = []
    for path in production_modules():
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}::{node.name} ({lines} lines)")
    assert not too_long, "\n".join(too_long)


def test_no_module_is_over_600_lines() -> None:
    too_long = [
        f"{path.relative_to(ROOT)} ({lines} lines)"
        for path in production_modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, "\n".join(too_long)


def test_every_module_starts_with_a_docstring_saying_what_it_owns() -> None:
    undocumented = [
        str(path.relative_to(ROOT))
        for path in production_modules()
        if not (ast.get_docstring(parsed(path)) or "").strip()
    ]
    assert not undocumented, "\n".join(undocumented)
