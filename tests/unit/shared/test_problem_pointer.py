"""The api's conversion of validation error keys into JSON pointers (services/api errors.py).

Kept under tests/unit/shared because this suite owns only the shared and executor unit folders.
"""

from __future__ import annotations

import pytest
from flowline_api.errors import _pointer


@pytest.mark.parametrize(
    ("key", "pointer"),
    [
        ("definition.steps[0].type", "/definition/steps/0/type"),
        ("definition.steps[12].needs[3]", "/definition/steps/12/needs/3"),
        ("definition.steps[0].retry.maxAttempts", "/definition/steps/0/retry/maxAttempts"),
        ("name", "/name"),
        ("tags[1]", "/tags/1"),
        ("matrix[0][2]", "/matrix/0/2"),
        ("", ""),
        ("data", ""),
    ],
)
def test_pointer(key: str, pointer: str) -> None:
    assert _pointer(key) == pointer
