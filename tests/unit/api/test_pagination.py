from __future__ import annotations

import pytest
from flowline.errors import ClientError
from flowline_api.pagination import decode_cursor, encode_cursor


def test_a_cursor_gives_back_its_key() -> None:
    key = ["2026-11-22T07:00:00+00:00", "0193a5a0-0000-7000-8000-000000000000"]

    assert decode_cursor(encode_cursor(key), 2) == key


@pytest.mark.parametrize("cursor", ["not base64!", "bm90IGpzb24", encode_cursor(["one"]), encode_cursor({"a": 1})])
def test_a_foreign_cursor_is_refused(cursor: object) -> None:
    with pytest.raises(ClientError, match="not a cursor returned by this list"):
        decode_cursor(str(cursor), 2)
