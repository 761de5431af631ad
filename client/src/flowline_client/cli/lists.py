"""Printing lists: one page and where the next one starts, or with ``--all`` every page."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from flowline_client.cli.output import Output

Item = TypeVar("Item")
PageItem = TypeVar("PageItem", covariant=True)


class _Page(Protocol[PageItem]):
    @property
    def items(self) -> Sequence[PageItem]: ...
    @property
    def total(self) -> int: ...
    @property
    def next_cursor(self) -> str | None: ...


def add_paging(parser: argparse.ArgumentParser) -> None:
    """``--limit``, ``--cursor`` and ``--all`` on a list command."""
    parser.add_argument("--limit", type=int, default=20, help="items per page (1 to 100)")
    parser.add_argument("--cursor", help="nextCursor of the previous page")
    parser.add_argument("--all", action="store_true", help="every page, not just the first")


async def print_list(
    out: Output,
    args: argparse.Namespace,
    *,
    page: Callable[[], Awaitable[_Page[Item]]],
    every: Callable[[], AsyncIterator[Item]],
    headers: Sequence[str],
    row: Callable[[Item], Sequence[str]],
) -> int:
    """Print one page (``page()``) or, with ``--all``, every item (``every()``) as a table or one JSON document.

    With ``--all`` the JSON document is ``{"items": [...], "total": n}``; without it, the page as the api sent it.
    """
    items: Sequence[Item]
    if args.all:
        items = [item async for item in every()]
        if out.json:
            out.document({"items": items, "total": len(items)})
            return 0
        out.table(headers, [row(item) for item in items])
        return 0
    first = await page()
    if out.json:
        out.document(first)
        return 0
    out.table(headers, [row(item) for item in first.items])
    if first.next_cursor:
        total = f"about {first.total}" if getattr(first, "total_exact", True) is False else str(first.total)
        out.hint(f"{len(first.items)} of {total}; next page: --cursor {first.next_cursor} (or --all)")
    return 0
