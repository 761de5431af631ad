"""The steps graph of an execution or a workflow: nodes laid out by dependency level, edges from ``needs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

NODE_WIDTH: Final = 190
NODE_HEIGHT: Final = 70
COLUMN_GAP: Final = 56
ROW_GAP: Final = 18
MARGIN: Final = 8
# Above this many steps the page shows counts per level and status instead of a drawing: thousands of SVG
# nodes make a browser crawl, and nobody reads them one by one.
SUMMARY_ABOVE: Final = 300
NOT_STARTED: Final = "not started"  # a step of the definition the execution has not reached (no step execution)


@dataclass(frozen=True, slots=True)
class Node:
    """One step, where it is drawn and what it shows."""

    step_id: str
    step_type: str
    status: str
    attempts: int
    duration_ms: int | None
    level: int
    x: int
    y: int

    @property
    def duration(self) -> str:
        """The duration in a form people read (``1.2 s``, ``350 ms``, ``2 min 5 s``), or an empty string."""
        return format_duration(self.duration_ms)


@dataclass(frozen=True, slots=True)
class Edge:
    """A ``needs`` arrow, as an SVG path from the needed step to the step that needs it."""

    source: str
    target: str
    path: str


@dataclass(frozen=True, slots=True)
class Graph:
    """A laid-out graph; ``summary`` instead of nodes when there are too many to draw."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    summary: list[dict[str, Any]] | None = None


def format_duration(milliseconds: int | None) -> str:
    """``350 ms``, ``1.2 s``, ``2 min 5 s``; empty for None."""
    if milliseconds is None:
        return ""
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def levels(steps: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each step's dependency level: 0 without ``needs``, else one more than its deepest need.

    Definitions are checked for cycles when stored; a need that names no step counts as level 0.
    """
    needs = {str(step["id"]): [str(need) for need in step.get("needs") or []] for step in steps}
    found: dict[str, int] = {}
    for root in needs:
        pending = [root]
        while pending:
            step_id = pending[-1]
            missing = [need for need in needs.get(step_id, []) if need in needs and need not in found]
            if missing:
                pending.extend(missing)
                continue
            pending.pop()
            found[step_id] = max((found.get(need, -1) for need in needs.get(step_id, [])), default=-1) + 1
    return found


def layout(steps: Sequence[Mapping[str, Any]], runs: Mapping[str, Any]) -> Graph:
    """Lay out ``steps`` (definition order) by level, left to right; ``runs`` maps step ids to their step execution.

    A step without a step execution yet is ``not started``.
    """
    level_of = levels(steps)
    if len(steps) > SUMMARY_ABOVE:
        return Graph(nodes=[], edges=[], width=0, height=0, summary=_summary(steps, runs, level_of))
    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for step in steps:
        step_id = str(step["id"])
        level = level_of[step_id]
        row = rows[level] = rows.get(level, -1) + 1
        run = runs.get(step_id)
        nodes[step_id] = Node(
            step_id=step_id,
            step_type=str(step.get("type", "")),
            status=run.status if run is not None else NOT_STARTED,
            attempts=run.attempts if run is not None else 0,
            duration_ms=run.duration_ms if run is not None else None,
            level=level,
            x=MARGIN + level * (NODE_WIDTH + COLUMN_GAP),
            y=MARGIN + row * (NODE_HEIGHT + ROW_GAP),
        )
    edges = [
        _edge(nodes[str(need)], nodes[str(step["id"])])
        for step in steps
        for need in step.get("needs") or []
        if str(need) in nodes
    ]
    columns = max(rows, default=0) + 1
    tallest = max(rows.values(), default=0) + 1
    return Graph(
        nodes=list(nodes.values()),
        edges=edges,
        width=2 * MARGIN + columns * NODE_WIDTH + (columns - 1) * COLUMN_GAP,
        height=2 * MARGIN + tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP,
    )


def _edge(source: Node, target: Node) -> Edge:
    start_x, start_y = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
    end_x, end_y = target.x, target.y + NODE_HEIGHT // 2
    middle = (start_x + end_x) // 2
    path = f"M{start_x},{start_y} C{middle},{start_y} {middle},{end_y} {end_x - 6},{end_y}"
    return Edge(source=source.step_id, target=target.step_id, path=path)


def _summary(
    steps: Sequence[Mapping[str, Any]], runs: Mapping[str, Any], level_of: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Per level: how many steps, and how many in each status."""
    per_level: dict[int, dict[str, int]] = {}
    for step in steps:
        run = runs.get(str(step["id"]))
        counts = per_level.setdefault(level_of[str(step["id"])], {})
        status = run.status if run is not None else NOT_STARTED
        counts[status] = counts.get(status, 0) + 1
    return [
        {"level": level, "steps": sum(counts.values()), "counts": sorted(counts.items())}
        for level, counts in sorted(per_level.items())
    ]
