"""The steps graph of an execution or a workflow: nodes laid out by dependency level, edges from ``needs``.

A fan-out (many sibling steps of one type, with the same ``needs`` and ids that differ by a number: ``fetch-0``
… ``fetch-999``) is drawn as one group node with its members' counts per status, unless the page asks to
expand it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
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
# This many sibling branches or more are one group node: twenty boxes that say the same thing hide the rest.
FAN_OUT_AT: Final = 10
# A fan-out's node takes the colour of the first of these its branches are in: what needs a look first.
GROUP_STATUS_ORDER: Final = (
    "failed",
    "running",
    "scheduled",
    "pending",
    "cancelled",
    "skipped",
    NOT_STARTED,
    "completed",
)
_BRANCH_ID: Final = re.compile(r"^(?P<stem>.*?[^-_.\d])[-_.]?\d+$")


@dataclass(frozen=True, slots=True)
class FanOut:
    """Sibling steps drawn as one node: ``name`` (what their ids share) and their ids, in definition order.

    ``spans``: the runs of places in the definition its members fill, first and last (usually one run): what
    the database counts its members by, without being sent every id.
    """

    name: str
    members: list[str]
    spans: list[tuple[int, int]]

    @property
    def key(self) -> str:
        """The id the group stands under in the layout: its first member's, which is drawn no longer."""
        return self.members[0]


def fan_outs(steps: Sequence[Mapping[str, Any]]) -> list[FanOut]:
    """The fan-outs of a definition, in the order of their first members.

    A fan-out is ``FAN_OUT_AT`` or more steps of one type with the same needs, whose ids are one stem and a
    number (``fetch-1``, ``fetch_2``, ``fetch3``); a name two fan-outs share gets ``#2`` the second time.
    """
    siblings: dict[tuple[str, str, tuple[str, ...]], list[tuple[int, str]]] = {}
    for place, step in enumerate(steps):
        match = _BRANCH_ID.match(str(step["id"]))
        if match:
            needs = tuple(sorted(str(need) for need in step.get("needs") or []))
            siblings.setdefault((match["stem"], str(step.get("type", "")), needs), []).append((place, str(step["id"])))
    found: list[FanOut] = []
    for (stem, _, _), members in siblings.items():
        if len(members) >= FAN_OUT_AT:
            taken = sum(1 for group in found if group.name.split("#")[0] == stem)
            name = f"{stem}#{taken + 1}" if taken else stem
            found.append(FanOut(name, [step_id for _, step_id in members], spans([place for place, _ in members])))
    return found


def spans(places: Sequence[int]) -> list[tuple[int, int]]:
    """Increasing ``places`` as runs of consecutive ones, first and last: ``[1, 2, 3, 7]`` is ``[(1, 3), (7, 7)]``."""
    runs: list[tuple[int, int]] = []
    for place in places:
        if runs and runs[-1][1] == place - 1:
            runs[-1] = (runs[-1][0], place)
        else:
            runs.append((place, place))
    return runs


def folded(
    steps: Sequence[Mapping[str, Any]], groups: Sequence[FanOut], expanded: Collection[str]
) -> list[dict[str, Any]]:
    """The steps as drawn: each group not ``expanded`` (by name) as one step under its key.

    The needs of the steps after a folded group point at its key instead of its members.
    """
    folding = [group for group in groups if group.name not in expanded]
    key_of = {member: group.key for group in folding for member in group.members}
    drawn: list[dict[str, Any]] = []
    for step in steps:
        step_id = str(step["id"])
        if step_id in key_of and key_of[step_id] != step_id:
            continue
        needs = list(dict.fromkeys(key_of.get(str(need), str(need)) for need in step.get("needs") or []))
        drawn.append({**step, "needs": needs})
    return drawn


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
    group: GroupCounts | None = None

    @property
    def duration(self) -> str:
        """The duration in a form people read (``1.2 s``, ``350 ms``, ``2 min 5 s``), or an empty string."""
        return format_duration(self.duration_ms)


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """A fan-out's node: its name, how many branches, and how many of them are in each status."""

    name: str
    members: int
    counts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """What the node says: ``1,000 x fetch: 997 completed, 3 failed`` (with a multiplication sign)."""
        counts = ", ".join(f"{count:,} {status}" for status, count in self.counts)
        return f"{self.members:,} \N{MULTIPLICATION SIGN} {self.name}" + (f": {counts}" if counts else "")


def group_counts(group: FanOut, statuses: Mapping[str, int]) -> GroupCounts:
    """A fan-out's node from its members' counts per status (those without a step execution are not started)."""
    counts = {status: count for status, count in statuses.items() if count}
    missing = len(group.members) - sum(counts.values())
    if missing > 0:
        counts[NOT_STARTED] = counts.get(NOT_STARTED, 0) + missing
    return GroupCounts(name=group.name, members=len(group.members), counts=sorted(counts.items()))


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


def group_status(group: GroupCounts) -> str:
    """The one status a fan-out's node is coloured by: the first of its members' in ``GROUP_STATUS_ORDER``."""
    present = {status for status, count in group.counts if count}
    return next((status for status in GROUP_STATUS_ORDER if status in present), NOT_STARTED)


def layout(
    steps: Sequence[Mapping[str, Any]], runs: Mapping[str, Any], groups: Mapping[str, GroupCounts] | None = None
) -> Graph:
    """Lay out ``steps`` (definition order) by level, left to right; ``runs`` maps step ids to their step execution.

    A step without a step execution yet is ``not started``. ``groups`` maps the keys of folded fan-outs
    (``folded``) to their counts: those steps are drawn as group nodes.
    """
    level_of = levels(steps)
    if len(steps) > SUMMARY_ABOVE:
        return Graph(nodes=[], edges=[], width=0, height=0, summary=_summary(steps, runs, level_of))
    groups = groups or {}
    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for step in steps:
        step_id = str(step["id"])
        level = level_of[step_id]
        row = rows[level] = rows.get(level, -1) + 1
        run, group = runs.get(step_id), groups.get(step_id)
        status = group_status(group) if group else run.status if run is not None else NOT_STARTED
        nodes[step_id] = Node(
            step_id=step_id,
            step_type=str(step.get("type", "")),
            status=status,
            attempts=run.attempts if run is not None and group is None else 0,
            duration_ms=run.duration_ms if run is not None and group is None else None,
            level=level,
            x=MARGIN + level * (NODE_WIDTH + COLUMN_GAP),
            y=MARGIN + row * (NODE_HEIGHT + ROW_GAP),
            group=group,
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
