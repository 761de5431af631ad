"""Ids in route paths: each one a UUID to its handler and in the OpenAPI document, and what a malformed one answers.

Paths declare ids as plain segments (``/{execution_id:str}``) and handlers take them as these types, so a
malformed id fails the handler's validation and the error mapper (``errors.py``) answers it. A ``:uuid`` path
type would instead fail routing, before authentication, as if the route did not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from litestar.params import FromPath, Parameter

ExecutionId = FromPath[Annotated[uuid.UUID, Parameter(description="the execution id (a UUID)")]]
TaskId = FromPath[Annotated[uuid.UUID, Parameter(description="the task id (a UUID): `taskId` of a step")]]
AgentId = FromPath[Annotated[uuid.UUID, Parameter(description="the agent id (a UUID)")]]
ApiKeyId = FromPath[Annotated[uuid.UUID, Parameter(description="the API key id (a UUID)")]]
ScheduleId = FromPath[Annotated[uuid.UUID, Parameter(description="the schedule id (a UUID)")]]
OperationId = FromPath[Annotated[uuid.UUID, Parameter(description="the bulk operation id (a UUID)")]]
WebhookId = FromPath[Annotated[uuid.UUID, Parameter(description="the webhook id (a UUID)")]]
DeliveryId = FromPath[Annotated[uuid.UUID, Parameter(description="the delivery id (a UUID): its webhook-id header")]]

# A malformed id is a 400 naming the parameter, except on the routes of controllers whose ``opt`` sets this key:
# they answered it with 404 Not found when their paths declared ``:uuid``, and keep answering so.
MALFORMED_ID_IS_NOT_FOUND: Final = "malformed_id_is_not_found"
