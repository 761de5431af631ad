"""Request bodies of the API key routes, and the response body of a stored key."""

from __future__ import annotations

from typing import Annotated

import msgspec
from flowline.domain.credentials import ApiKey as StoredApiKey
from flowline_schemas.api_keys import ApiKey, Role


class ApiKeyCreate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A key to make: a name people recognise and the role it grants."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["ci-pipeline"])]
    role: Annotated[Role, msgspec.Meta(description="viewer, operator or admin", examples=["operator"])]


def api_key_body(key: StoredApiKey) -> ApiKey:
    """The response body of a stored key."""
    return ApiKey(
        id=str(key.id),
        name=key.name,
        role=key.role,
        created_at=key.created_at,
        created_by=key.created_by,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )
