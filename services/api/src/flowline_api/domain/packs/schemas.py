"""Request bodies of the pack routes."""

from __future__ import annotations

from typing import Annotated

import msgspec

from flowline_api.domain.workflows.schemas import Description, Label, WorkflowState

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


class WorkflowFile(WorkflowState, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """The content of ``workflows/<name>.yaml``: a workflow of the pack; ``name`` defaults to the file's."""

    name: Annotated[str, msgspec.Meta(pattern=WORKFLOW_NAME_PATTERN)] | None = None
    ref: str | None = None


FilePath = Annotated[str, msgspec.Meta(max_length=300)]


class PackInstall(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A pack folder: ``pack.yaml`` and ``workflows/*.yaml`` (paths relative to the folder, YAML or JSON)."""

    files: Annotated[dict[FilePath, str], msgspec.Meta(min_length=1, max_length=1000)]
