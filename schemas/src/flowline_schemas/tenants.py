"""Response bodies of the tenant routes."""

from __future__ import annotations

from typing import Annotated

import msgspec


class TenantRetention(msgspec.Struct, kw_only=True, rename="camel"):
    """How long the executions of a tenant's workflows that set no retention of their own are kept."""

    retention: Annotated[
        str | None,
        msgspec.Meta(description="the tenant's default ('30d'); null: the server's", examples=["90d"]),
    ]
    effective: Annotated[
        str,
        msgspec.Meta(
            description="what applies: the tenant's default, or else the server's FLOWLINE_EXECUTION_RETENTION",
            examples=["90d"],
        ),
    ]
