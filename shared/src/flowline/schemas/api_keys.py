"""Response bodies of the API key routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from flowline.credentials import ApiKey as StoredApiKey
from flowline.credentials import Role


class ApiKey(msgspec.Struct, kw_only=True, rename="camel"):
    """An API key, without its secret."""

    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: Annotated[str | None, msgspec.Meta(description="the principal that made it")]
    last_used_at: Annotated[datetime | None, msgspec.Meta(description="updated at most once a minute")]
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: StoredApiKey) -> ApiKey:
        """The response body of a stored key."""
        return cls(
            id=str(key.id),
            name=key.name,
            role=key.role,
            created_at=key.created_at,
            created_by=key.created_by,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
        )


class CreatedApiKey(ApiKey, kw_only=True, rename="camel"):
    """A new key, with the key itself: shown this once, stored only as a hash."""

    key: Annotated[str, msgspec.Meta(description="send as Authorization: Bearer <key>", examples=["fl_0190…_s3cr3t"])]


class ApiKeyList(msgspec.Struct, kw_only=True, rename="camel"):
    """The tenant's keys, newest first, revoked ones included."""

    items: list[ApiKey]
