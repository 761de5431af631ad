"""Response bodies of the audit log routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec


class AuditLog(msgspec.Struct, kw_only=True, rename="camel"):
    """One change to a workflow, pack, agent or bulk operation, written in the same transaction as the change."""

    id: str
    entity_type: Annotated[str, msgspec.Meta(examples=["agent"])]
    entity_id: Annotated[str, msgspec.Meta(examples=["0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"])]
    action: Annotated[str, msgspec.Meta(description="create, update or delete", examples=["update"])]
    principal: Annotated[str | None, msgspec.Meta(description="who made the change, when known")]
    changes: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(
            description="field → {before, after}; secret fields show only `***`",
            examples=[{"timeoutMs": {"before": 30000, "after": 5000}, "authConfig": {"before": "***", "after": "***"}}],
        ),
    ]
    request_id: Annotated[str | None, msgspec.Meta(description="the X-Request-ID of the request that made it")]
    occurred_at: datetime
