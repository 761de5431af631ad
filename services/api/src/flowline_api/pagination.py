"""Every list's query parameters, cursors and pages, as the OpenAPI document names them (docs/architecture.md §8)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import msgspec
from flowline.errors import ClientError
from flowline_schemas.agents import Agent
from flowline_schemas.audit import AuditLog
from flowline_schemas.packs import Pack
from flowline_schemas.pagination import Page
from flowline_schemas.schedules import Schedule
from flowline_schemas.webhooks import Webhook, WebhookDelivery
from flowline_schemas.workflows import WorkflowSummary, WorkflowVersion
from litestar.params import KwargDefinition, Parameter

Limit = Annotated[int, Parameter(ge=1, le=100, description="items per page (1 to 100)")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000, description="items to skip; prefer `cursor` for deep pages")]
Cursor = Annotated[
    str | None,
    Parameter(max_length=500, description="`nextCursor` of the previous page: a stable keyset page", required=False),
]


# Litestar names a generic component after the import paths of its arguments (`Page_flowline_schemas.…`):
# these give the pages short component names of their own.
AgentPage = Annotated[Page[Agent], KwargDefinition(schema_component_key="AgentPage")]
AuditLogPage = Annotated[Page[AuditLog], KwargDefinition(schema_component_key="AuditLogPage")]
SchedulePage = Annotated[Page[Schedule], KwargDefinition(schema_component_key="SchedulePage")]
PackPage = Annotated[Page[Pack], KwargDefinition(schema_component_key="PackPage")]
WebhookPage = Annotated[Page[Webhook], KwargDefinition(schema_component_key="WebhookPage")]
WebhookDeliveryPage = Annotated[Page[WebhookDelivery], KwargDefinition(schema_component_key="WebhookDeliveryPage")]
WorkflowSummaryPage = Annotated[
    Page[WorkflowSummary],
    KwargDefinition(schema_component_key="WorkflowSummaryPage"),
]
WorkflowVersionPage = Annotated[
    Page[WorkflowVersion],
    KwargDefinition(schema_component_key="WorkflowVersionPage"),
]


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
