"""Request bodies of the API key routes."""

from __future__ import annotations

from typing import Annotated

import msgspec
from flowline.credentials import Role


class ApiKeyCreate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A key to make: a name people recognise and the role it grants."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["ci-pipeline"])]
    role: Annotated[Role, msgspec.Meta(description="viewer, operator or admin", examples=["operator"])]
