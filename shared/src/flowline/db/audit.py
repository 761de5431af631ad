"""The audit log: who changed which definition, pack or agent, or started which bulk operation, and how."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from flowline.runtime.ids import uuid7

SECRET_MASK = "***"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change: the principal (None until authentication exists) and the request's id."""

    principal: str | None
    request_id: str | None


def field_changes(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    *,
    secret_fields: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    """``{field: {"before": …, "after": …}}`` for every field that differs; secret fields show only a mask."""
    old, new = before or {}, after or {}
    changes: dict[str, dict[str, Any]] = {}
    for field in sorted(old.keys() | new.keys()):
        if old.get(field) == new.get(field):
            continue
        if field in secret_fields:
            changes[field] = {
                "before": SECRET_MASK if old.get(field) is not None else None,
                "after": SECRET_MASK if new.get(field) is not None else None,
            }
        else:
            changes[field] = {"before": old.get(field), "after": new.get(field)}
    return changes


async def record_audit(
    connection: asyncpg.Connection,
    *,
    tenant_id: uuid.UUID,
    entity_type: str,
    entity_id: str,
    action: str,
    actor: Actor,
    changes: dict[str, dict[str, Any]] | None,
) -> None:
    """Append one audit row inside the caller's transaction, so the row exists exactly when the change does."""
    await connection.execute(
        "INSERT INTO audit_logs (id, tenant_id, entity_type, entity_id, action, principal, changes, request_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        uuid7(),
        tenant_id,
        entity_type,
        entity_id,
        action,
        actor.principal,
        changes,
        actor.request_id,
    )
