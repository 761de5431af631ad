"""The JSON limits: bodies that may break them are checked in full, the rest pass without being decoded."""

from __future__ import annotations

import pytest
from flowline_api.limits import JsonLimitExceeded, check_json_limits


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'{"a": [[[[1]]]]}', "/a/0/0/0"),  # the fifth container is one level too deep
        (b'{"a": "' + b"x" * 9 + b'"}', "/a"),
        (b'{"' + b"k" * 9 + b'": 1}', ""),
        (b'"' + b"x" * 9 + b'"', ""),  # the smallest body with a string too long: 11 bytes
        (b"[[[[[" + b"]]]]]", "/0/0/0/0"),
    ],
)
def test_bodies_past_a_limit_are_refused_however_small(body: bytes, pointer: str) -> None:
    with pytest.raises(JsonLimitExceeded) as refused:
        check_json_limits(body, max_depth=4, max_string_length=8)
    assert refused.value.extra == {"pointer": pointer}


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": [[[1]]]}',  # four containers: the deepest allowed
        b'"' + b"x" * 8 + b'"',
        b'"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"',  # 8 characters in 50 bytes: decoded, passes
        b'{"a": "[[[[[[[["}',  # brackets in a string: counted, then decoded, and pass
        b"{not json",
    ],
)
def test_bodies_within_the_limits_pass(body: bytes) -> None:
    check_json_limits(body, max_depth=4, max_string_length=8)
