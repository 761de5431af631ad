"""Pieces of SQL that another statement carries as CTEs, numbered after that statement's own parameters."""

from __future__ import annotations

import functools
import re

_PARAMETER = re.compile(r"\$(\d+)")


@functools.cache
def numbered_from(sql: str, first: int) -> str:
    """``sql`` with its parameters ``$1``, ``$2``… renumbered ``$first``, ``$first + 1``… (cached: statements recur)."""
    if first == 1:
        return sql
    return _PARAMETER.sub(lambda match: f"${int(match.group(1)) + first - 1}", sql)
