"""Response bodies of the API key routes, and the roles a key grants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

# Fewest rights first: each role may do what the ones before it may.
Role = Literal["viewer", "operator", "admin"]


class ApiKey(msgspec.Struct, kw_only=True, rename="camel"):
    """An API key, without its secret."""

    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: Annotated[str | None, msgspec.Meta(description="the principal that made it")]
    last_used_at: Annotated[datetime | None, msgspec.Meta(description="updated at most once a minute")]
    revoked_at: datetime | None


class CreatedApiKey(ApiKey, kw_only=True, rename="camel"):
    """A new key, with the key itself: shown this once, stored only as a hash."""

    key: Annotated[str, msgspec.Meta(description="send as Authorization: Bearer <key>", examples=["fl_0190…_s3cr3t"])]


class ApiKeyList(msgspec.Struct, kw_only=True, rename="camel"):
    """The tenant's keys, newest first, revoked ones included."""

    items: list[ApiKey]
