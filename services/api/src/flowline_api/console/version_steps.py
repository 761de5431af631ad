"""What the execution page derives from a workflow version's steps, made once per version and kept.

A version never changes once stored, so its steps, their fan-outs, its graph with those folded and which steps
need which are the same for every execution of it. Without this, the page of a 5,000-step execution read and
walked its definition (330 KB of JSON) on every request and on every burst of its live stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from flowline.runtime.caches import BoundedCache

from flowline_api.console.graph import FanOut, fan_outs, folded
from flowline_api.domain.workflows.service import WorkflowService

# Kept entries hold the definitions parsed, a few times their JSON size: 64 MiB of JSON is some 300 MiB at most.
CACHED_VERSIONS: Final = 1_024
CACHED_DEFINITION_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class VersionSteps:
    """A version's steps and what the page derives from them. Shared by every page that shows it: read only.

    ``folded``: the steps as drawn with every fan-out folded (as a page shows them unless it expands one);
    ``needed_by``: the steps that need each step directly; ``size``: the definition's size as JSON.
    """

    steps: list[dict[str, Any]]
    fan_outs: list[FanOut]
    folded: list[dict[str, Any]]
    size: int
    position: dict[str, int] = field(default_factory=dict)  # each step's place in the definition
    needed_by: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, steps: Sequence[dict[str, Any]], size: int) -> VersionSteps:
        """What is derived from ``steps`` (definition order), whose definition is ``size`` bytes of JSON."""
        steps = list(steps)
        groups = fan_outs(steps)
        needed_by: dict[str, list[str]] = {}
        for step in steps:
            for need in step.get("needs") or []:
                needed_by.setdefault(str(need), []).append(str(step["id"]))
        return cls(
            steps=steps,
            fan_outs=groups,
            folded=folded(steps, groups, ()),
            size=size,
            position={str(step["id"]): index for index, step in enumerate(steps)},
            needed_by=needed_by,
        )

    def step(self, step_id: str | None) -> dict[str, Any] | None:
        """The definition of the step ``step_id`` (None when the version has none)."""
        index = self.position.get(step_id) if step_id is not None else None
        return None if index is None else self.steps[index]

    def drawn(self, expanded: Collection[str]) -> list[dict[str, Any]]:
        """The steps as drawn: every fan-out folded but those ``expanded`` (by name)."""
        return folded(self.steps, self.fan_outs, expanded) if expanded else self.folded

    def downstream_of(self, step_id: str) -> list[str]:
        """``step_id`` and every step that needs it, directly or through others, in definition order."""
        found = {step_id}
        pending = [step_id]
        while pending:
            for follower in self.needed_by.get(pending.pop(), []):
                if follower not in found:
                    found.add(follower)
                    pending.append(follower)
        return sorted(found.intersection(self.position), key=self.position.__getitem__)


class VersionStepsCache:
    """The ``VersionSteps`` of the versions whose executions the console showed lately, by version id.

    Each page still reads the version's id (a small row), so a workflow deleted since is seen at once, and one
    deleted and created again under its ref, whose versions have new ids, is never shown another's steps.
    Bounded by the definitions' size as JSON as well as by count; the least recently shown go first.
    """

    def __init__(self, max_entries: int = CACHED_VERSIONS, max_bytes: int = CACHED_DEFINITION_BYTES) -> None:
        self._entries: BoundedCache[tuple[uuid.UUID, uuid.UUID], VersionSteps] = BoundedCache(
            max_entries=max_entries, max_bytes=max_bytes, size_of=lambda entry: entry.size
        )

    async def steps_of(self, workflows: WorkflowService, tenant_id: uuid.UUID, ref: str, version: int) -> VersionSteps:
        """The steps of version ``version`` of the live workflow ``ref``, read only when not kept.

        Raises:
            NotFound: no such workflow or version.
        """
        key = (tenant_id, await workflows.version_id(tenant_id, ref, version))
        kept = self._entries.get(key)
        if kept is None:
            definition = await workflows.version_definition(key[1])
            kept = VersionSteps.of(definition.get("steps", []), len(msgspec.json.encode(definition)))
            self._entries[key] = kept
        return kept
