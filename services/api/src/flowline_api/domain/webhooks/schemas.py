"""Request bodies of the webhook routes."""

from __future__ import annotations

from typing import Annotated

import msgspec
from flowline.domain.webhooks import DEFAULT_EVENTS
from flowline.messages import EventType
from flowline_schemas.agents import Description

from flowline_api.domain.merge_patch import MergePatch
from flowline_api.domain.workflows.schemas import WorkflowRef

WebhookUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2000,
        description="http or https URL the deliveries are POSTed to (checked by the outbound address policy)",
        examples=["https://hooks.example.com/flowline"],
    ),
]
Events = Annotated[
    list[EventType],
    msgspec.Meta(
        min_length=1,
        max_length=50,
        description="the state events to send (default: how executions end: " + ", ".join(DEFAULT_EVENTS) + ")",
        examples=[["WORKFLOW_FAILED", "TASK_FAILED"]],
    ),
]
Workflows = Annotated[
    list[WorkflowRef],
    msgspec.Meta(
        min_length=1, max_length=100, description="only executions of these workflows (default: every workflow)"
    ),
]


class WebhookCreate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A new webhook."""

    url: WebhookUrl
    events: Events = msgspec.field(default_factory=lambda: list(DEFAULT_EVENTS))
    workflows: Workflows | None = None
    description: Description | None = None
    enabled: bool = True


class WebhookUpdate(MergePatch, kw_only=True, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Changes to a webhook (a merge patch): omitted fields keep their value, null clears an optional one.

    Enabling a webhook that was disabled automatically clears ``disabledReason``; its pending deliveries go out.
    """

    url: WebhookUrl | msgspec.UnsetType = msgspec.UNSET
    events: Events | msgspec.UnsetType = msgspec.UNSET
    workflows: Workflows | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
