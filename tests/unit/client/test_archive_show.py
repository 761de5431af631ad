"""``flowline executions archive-show`` reads a local file: no api and no configuration, and says what is wrong."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from flowline_client.cli import main


def test_a_file_that_is_not_an_archive_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "plain.json.gz"
    plain.write_text("not gzip")
    other = tmp_path / "other.json.gz"
    other.write_bytes(gzip.compress(b'{"hello": 1}'))

    codes = [
        main(["executions", "archive-show", str(path)], environ={})
        for path in (plain, other, tmp_path / "missing.json.gz")
    ]

    assert codes == [2, 2, 2]
    errors = capsys.readouterr().err.splitlines()
    assert errors[0].startswith(f"flowline: {plain}: not a gzip'd JSON archive")
    assert errors[1] == f"flowline: {other}: not an execution archive"
    assert errors[2].startswith(f"flowline: cannot read {tmp_path / 'missing.json.gz'}")
