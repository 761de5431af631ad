"""The client's types: the very structs the api answers with (``flowline_schemas``), and stream helpers.

They ignore unknown fields (except inside an agent's ``retryConfig``), so a newer server's additions do not
break an older client.
"""

from __future__ import annotations

from flowline_schemas.agents import Agent, AgentHealth
from flowline_schemas.api_keys import ApiKey, ApiKeyList, CreatedApiKey
from flowline_schemas.audit import AuditLog
from flowline_schemas.bulk import BulkOperation, BulkOperationError, ExecutionFilter
from flowline_schemas.control import Cancelled, RecoveryPreview, RerunAccepted, RetryAccepted, StatusChanged
from flowline_schemas.executions import (
    AttemptList,
    ChildExecution,
    ChildList,
    EventList,
    Execution,
    ExecutionEvent,
    ExecutionPage,
    ExecutionSummary,
    PromiseSettlement,
    StepExecution,
    StepList,
    Task,
    TaskAttempt,
)
from flowline_schemas.logs import TaskLog, TaskLogPage
from flowline_schemas.packs import InstalledWorkflow, Pack, PackInstalled
from flowline_schemas.pagination import Page
from flowline_schemas.schedules import BackfillPreview, LastRun, Schedule, TriggeredRun
from flowline_schemas.streams import FINAL_EVENTS, StreamEvent, StreamLog
from flowline_schemas.webhooks import Webhook, WebhookDelivery, WebhookWithSecret
from flowline_schemas.workflows import ExecutionAccepted, Workflow, WorkflowSummary, WorkflowVersion

__all__ = [
    "FINAL_EVENTS",
    "Agent",
    "AgentHealth",
    "ApiKey",
    "ApiKeyList",
    "AttemptList",
    "AuditLog",
    "BackfillPreview",
    "BulkOperation",
    "BulkOperationError",
    "Cancelled",
    "ChildExecution",
    "ChildList",
    "CreatedApiKey",
    "EventList",
    "Execution",
    "ExecutionAccepted",
    "ExecutionEvent",
    "ExecutionFilter",
    "ExecutionPage",
    "ExecutionSummary",
    "InstalledWorkflow",
    "LastRun",
    "Pack",
    "PackInstalled",
    "Page",
    "PromiseSettlement",
    "RecoveryPreview",
    "RerunAccepted",
    "RetryAccepted",
    "Schedule",
    "StatusChanged",
    "StepExecution",
    "StepList",
    "StreamEvent",
    "StreamLog",
    "StreamMessage",
    "Task",
    "TaskAttempt",
    "TaskLog",
    "TaskLogPage",
    "TriggeredRun",
    "Webhook",
    "WebhookDelivery",
    "WebhookWithSecret",
    "Workflow",
    "WorkflowSummary",
    "WorkflowVersion",
]

# One message of a live stream, told apart by its "type" tag (the api sends each as its own struct).
StreamMessage = StreamEvent | StreamLog
