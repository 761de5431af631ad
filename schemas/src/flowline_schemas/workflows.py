"""Response bodies of the workflow routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Workflow(msgspec.Struct, kw_only=True, rename="camel"):
    """A workflow with one of its versions."""

    ref: str
    pack: str
    name: str
    label: str | None
    description: str | None
    version: int
    definition: dict[str, Any]
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    tags: list[str]
    enabled: bool
    public: bool
    # How long its executions are kept once their root finished ("30d"); None: its tenant's default, else the server's.
    retention: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class WorkflowSummary(msgspec.Struct, kw_only=True, rename="camel"):
    """A workflow in a list: its metadata and latest version number, without the definition."""

    ref: str
    pack: str
    name: str
    label: str | None
    description: str | None
    version: int
    tags: list[str]
    enabled: bool
    public: bool
    retention: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class WorkflowVersion(msgspec.Struct, kw_only=True, rename="camel"):
    """One immutable version of a workflow in the list of its versions."""

    version: int
    created_by: str | None
    created_at: datetime


class ExecutionAccepted(msgspec.Struct, kw_only=True, rename="camel"):
    """The answer to a start request: the execution runs asynchronously."""

    execution_id: str
    status: str
    created_at: datetime
