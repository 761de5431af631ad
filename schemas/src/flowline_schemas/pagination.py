"""The one shape of every list (docs/architecture.md §8): limit/offset with a total, plus an opaque keyset cursor."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

Item = TypeVar("Item")


class Page(msgspec.Struct, Generic[Item], kw_only=True, rename="camel"):
    """One page of a list; ``nextCursor`` is null on the last page."""

    items: list[Item]
    total: int
    limit: int
    offset: int
    next_cursor: str | None
