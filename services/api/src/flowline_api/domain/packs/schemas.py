"""Request and response bodies of the pack routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from flowline_api.domain.workflows.schemas import (
    DEFINITION_EXAMPLE,
    Description,
    Label,
    WorkflowUpdate,
)

PACK_REF_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
WORKFLOW_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,126}$"
PackRef = Annotated[str, msgspec.Meta(pattern=PACK_REF_PATTERN, description="lower case; the first part of its refs")]
PackVersion = Annotated[str, msgspec.Meta(max_length=100, description="the pack's own version, e.g. 1.2.0")]


class PackCreate(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A new pack: the namespace of workflows ``<pack>.<name>``; also the content of ``pack.yaml``."""

    ref: PackRef
    label: Label | None = None
    description: Description | None = None
    version: PackVersion | None = None


class Pack(msgspec.Struct, kw_only=True, rename="camel"):
    """A pack of workflows."""

    ref: str
    label: str | None
    description: str | None
    version: str | None
    created_at: datetime
    updated_at: datetime


class WorkflowFile(WorkflowUpdate, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The content of ``workflows/<name>.yaml``: a workflow of the pack; ``name`` defaults to the file's."""

    name: Annotated[str, msgspec.Meta(pattern=WORKFLOW_NAME_PATTERN)] | None = None
    ref: str | None = None


FilePath = Annotated[str, msgspec.Meta(max_length=300)]


class PackInstall(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A pack folder: ``pack.yaml`` and ``workflows/*.yaml`` (paths relative to the folder, YAML or JSON)."""

    files: Annotated[dict[FilePath, str], msgspec.Meta(min_length=1, max_length=1000)]


Change = Literal["created", "updated", "unchanged"]


class InstalledWorkflow(msgspec.Struct, kw_only=True, rename="camel"):
    """What installing did to one workflow; ``version`` is its latest after the install."""

    file: str
    ref: str
    change: Change
    version: int


class PackInstalled(msgspec.Struct, kw_only=True, rename="camel"):
    """What installing a pack changed (in one transaction)."""

    pack: Pack
    change: Change
    workflows: list[InstalledWorkflow]


PACK_CREATE_EXAMPLE: dict[str, Any] = {
    "ref": "demo",
    "label": "Demo",
    "description": "Workflows of the tour",
    "version": "1.0.0",
}
PACK_EXAMPLE: dict[str, Any] = {
    **PACK_CREATE_EXAMPLE,
    "createdAt": "2026-11-22T07:00:00Z",
    "updatedAt": "2026-11-22T07:00:00Z",
}
PACK_INSTALL_EXAMPLE: dict[str, Any] = {
    "files": {
        "pack.yaml": "ref: demo\nlabel: Demo\nversion: 1.0.0\n",
        "workflows/hello.yaml": msgspec.yaml.encode({"label": "Hello", "definition": DEFINITION_EXAMPLE}).decode(),
    }
}
PACK_INSTALLED_EXAMPLE: dict[str, Any] = {
    "pack": PACK_EXAMPLE,
    "change": "created",
    "workflows": [{"file": "workflows/hello.yaml", "ref": "demo.hello", "change": "created", "version": 1}],
}
