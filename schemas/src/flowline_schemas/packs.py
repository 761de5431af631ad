"""Response bodies of the pack routes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Change = Literal["created", "updated", "unchanged"]


class Pack(msgspec.Struct, kw_only=True, rename="camel"):
    """A pack of workflows."""

    ref: str
    label: str | None
    description: str | None
    version: str | None
    created_at: datetime
    updated_at: datetime


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
