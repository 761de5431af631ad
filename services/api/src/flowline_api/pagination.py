"""The one shape of every list (DESIGN §7): limit/offset with a total, plus an opaque keyset cursor."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from flowline.errors import ClientError
from litestar.params import Parameter

Item = TypeVar("Item")

Limit = Annotated[int, Parameter(ge=1, le=100, description="items per page (1 to 100)")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000, description="items to skip; prefer `cursor` for deep pages")]
Cursor = Annotated[
    str | None,
    Parameter(max_length=500, description="`nextCursor` of the previous page: a stable keyset page", required=False),
]


class Page(msgspec.Struct, Generic[Item], kw_only=True, rename="camel"):
    """One page of a list; ``nextCursor`` is null on the last page."""

    items: list[Item]
    total: int
    limit: int
    offset: int
    next_cursor: str | None


def encode_cursor(key: list[Any]) -> str:
    """An opaque cursor for the sort key of the last item of a page (values JSON-encodable by msgspec)."""
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    """The sort key ``encode_cursor`` wrote, checked to hold ``length`` values.

    Raises:
        ClientError: the cursor was not written by this api for this list.
    """
    try:
        key = msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError) as err:
        raise ClientError("cursor: not a cursor returned by this list") from err
    if not isinstance(key, list) or len(key) != length:
        raise ClientError("cursor: not a cursor returned by this list")
    return key
