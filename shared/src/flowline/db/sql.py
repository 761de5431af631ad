"""Statements composed of pieces, with named parameters (``:name``, compiled once to ``$n``), and typed rows."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

import asyncpg
import msgspec

RowT = TypeVar("RowT", bound=msgspec.Struct)

# ``:name``, but not the second colon of a cast (``::uuid``) nor a colon inside a word.
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Compiled(NamedTuple):
    """A statement in asyncpg's terms: its text with ``$1``, ``$2``… and the parameter name behind each."""

    text: str
    names: tuple[str, ...]


@functools.cache
def compiled(sql: str) -> Compiled:
    """``sql`` with each distinct ``:name`` numbered in order of first use (cached: statements recur).

    Pieces of one statement share a parameter by using the same name, so a name means one value everywhere in it.
    """
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    return Compiled(_NAMED.sub(number, sql), tuple(numbers))


def bind(sql: str, /, *pieces: Mapping[str, Any], **params: Any) -> list[Any]:
    """The arguments of ``connection.fetch(*bind(sql, …))``: the compiled text, then each parameter's value.

    The values come from ``params`` and from the parameters of the pieces ``sql`` is composed of, which may
    share a name (the execution's id, say): a name means one value throughout the statement.

    Raises:
        KeyError: a parameter of ``sql`` has no value.
    """
    statement = compiled(sql)
    if pieces:
        params = {key: value for piece in pieces for key, value in piece.items()} | params
    return [statement.text, *(params[name] for name in statement.names)]


def typed(records: Iterable[asyncpg.Record], row_type: type[RowT]) -> list[RowT]:
    """``records`` as ``row_type`` structs, whose fields are named as the records' columns."""
    return [row_type(**record) for record in records]
