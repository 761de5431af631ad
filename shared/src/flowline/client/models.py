"""The client's types: the very structs the api answers with (``flowline.schemas``), and stream helpers.

They ignore unknown fields (except inside an agent's ``retryConfig``), so a newer server's additions do not
break an older client.
"""

from __future__ import annotations

from flowline.schemas.agents import Agent, AgentHealth
from flowline.schemas.api_keys import ApiKey, ApiKeyList, CreatedApiKey
from flowline.schemas.audit import AuditLog
from flowline.schemas.bulk import BulkOperation, BulkOperationError, ExecutionFilter
from flowline.schemas.control import Cancelled, RerunAccepted, RetryAccepted, StatusChanged
from flowline.schemas.executions import (
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
from flowline.schemas.logs import TaskLog, TaskLogPage
from flowline.schemas.packs import InstalledWorkflow, Pack, PackInstalled
from flowline.schemas.pagination import Page
from flowline.schemas.streams import FINAL_EVENTS, StreamEvent, StreamLog
from flowline.schemas.workflows import ExecutionAccepted, Workflow, WorkflowSummary, WorkflowVersion

__all__ = [
    "FINAL_EVENTS",
    "Agent",
    "AgentHealth",
    "ApiKey",
    "ApiKeyList",
    "AttemptList",
    "AuditLog",
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
    "Pack",
    "PackInstalled",
    "Page",
    "PromiseSettlement",
    "RerunAccepted",
    "RetryAccepted",
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
    "Workflow",
    "WorkflowSummary",
    "WorkflowVersion",
]

# One message of a live stream, told apart by its "type" tag (the api sends each as its own struct).
StreamMessage = StreamEvent | StreamLog
