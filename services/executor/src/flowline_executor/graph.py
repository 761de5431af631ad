"""Pure graph decisions over a definition and its steps' statuses (docs/architecture.md §7)."""

from __future__ import annotations

from collections.abc import Mapping

from flowline.domain.definitions import StepDefinition, WorkflowDefinition

TERMINAL_STEP_STATUSES = frozenset({"completed", "failed", "cancelled", "skipped"})


class Graph:
    """A definition indexed for the questions the engine asks on every step transition."""

    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        self.steps: dict[str, StepDefinition] = {step.id: step for step in definition.steps}

    def _need_satisfied(self, need: str, statuses: Mapping[str, str]) -> bool:
        status = statuses[need]
        return status in ("completed", "skipped") or (status == "failed" and self.steps[need].continue_on_failure)

    def ready(self, statuses: Mapping[str, str]) -> list[StepDefinition]:
        """Pending steps whose every need has finished in a way that lets them run, in definition order."""
        return [
            step
            for step in self.definition.steps
            if statuses[step.id] == "pending" and all(self._need_satisfied(need, statuses) for need in step.needs)
        ]

    def failed_step(self, statuses: Mapping[str, str]) -> str | None:
        """The first step whose failure fails the execution, if any."""
        for step in self.definition.steps:
            if statuses[step.id] == "failed" and not step.continue_on_failure:
                return step.id
        return None

    def leaves(self) -> list[str]:
        """Steps no other step needs: their outputs are the workflow's output when it has no template."""
        needed = {need for step in self.definition.steps for need in step.needs}
        return [step.id for step in self.definition.steps if step.id not in needed]

    def finished(self, statuses: Mapping[str, str]) -> bool:
        """Whether every step reached a terminal status."""
        return all(status in TERMINAL_STEP_STATUSES for status in statuses.values())
