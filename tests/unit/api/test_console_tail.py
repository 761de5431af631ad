"""The live tail's search is ``grep -C`` on the stream: matches with the records around them, gaps marked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowline_api.console.live import TailSearch
from flowline_api.domain.logs.search import LogQuery
from flowline_schemas.streams import StreamLog


def _record(number: int, message: str) -> StreamLog:
    return StreamLog(
        id=str(number),
        execution_id="e",
        task_id="t",
        step_id="write",
        attempt=1,
        level="INFO",
        message=message,
        timestamp=datetime(2026, 12, 7, tzinfo=UTC),
    )


def _appended(tail: TailSearch, messages: list[str]) -> list[str]:
    """What the page appends, as ``id`` (a match), ``(id)`` (its context) or ``…`` (records left out)."""
    shown: list[str] = []
    for number, message in enumerate(messages):
        for line in tail.take(_record(number, message)):
            shown.append("…" if line is None else _word(line))
    return shown


def _word(line: dict[str, Any]) -> str:
    return f"({line['log'].id})" if line["context_record"] else str(line["log"].id)


def test_each_match_comes_with_the_records_around_it_and_a_gap_where_some_were_left_out() -> None:
    tail = TailSearch(LogQuery(text="Disk", context=1))
    messages = ["a", "b", "disk full", "c", "d", "e", "disk full again", "disk gone", "f", "g"]
    assert _appended(tail, messages) == ["…", "(1)", "2", "(3)", "…", "(5)", "6", "7", "(8)"]


def test_without_context_only_matches_are_appended_and_without_a_search_everything() -> None:
    assert _appended(TailSearch(LogQuery(text="x", context=0)), ["x", "y", "x", "x"]) == ["0", "…", "2", "3"]
    everything = [line for number in range(3) for line in TailSearch(LogQuery()).take(_record(number, "m"))]
    assert [line["log"].id for line in everything if line is not None] == ["0", "1", "2"]
