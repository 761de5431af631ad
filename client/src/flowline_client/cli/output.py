"""How the CLI prints: aligned tables and short sentences for people, one JSON document with ``--output json``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

_COLOURS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "grey": "90"}
STATUS_COLOURS = {
    "completed": "green",
    "healthy": "green",
    "failed": "red",
    "unhealthy": "red",
    "unreachable": "red",
    "cancelled": "yellow",
    "paused": "yellow",
    "running": "blue",
    "pending": "grey",
    "skipped": "grey",
}


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, colour: bool = False) -> str:
    """Columns padded to their widest cell, two spaces apart; a STATUS column coloured when ``colour``.

    Padding is computed on the plain text, so colour codes never shift the columns.
    """
    widths = [max([len(header), *(len(row[index]) for row in rows)]) for index, header in enumerate(headers)]
    status_column = headers.index("STATUS") if "STATUS" in headers else -1

    def line(cells: Sequence[str], paint: bool) -> str:
        padded = []
        for index, cell in enumerate(cells):
            text = cell if index == len(cells) - 1 else cell.ljust(widths[index])
            if paint and index == status_column and (name := STATUS_COLOURS.get(cell.lower())):
                text = text.replace(cell, painted(cell, name))
            padded.append(text)
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers, False), *(line(row, colour) for row in rows)])


def painted(text: str, colour: str) -> str:
    """``text`` in a terminal colour."""
    return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m"


def when(moment: datetime | None) -> str:
    """``2024-01-15 10:30:00`` in UTC, or ``-``."""
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def duration(milliseconds: int | None) -> str:
    """``350ms``, ``12.5s``, ``3m07s``, ``2h05m``, or ``-``."""
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{second:02d}s"
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m"


def text(value: object) -> str:
    """A cell: ``-`` for nothing, plain strings as they are, anything else as compact JSON."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def error_message(error: dict[str, Any] | None) -> str:
    """``Type: message`` of a step or attempt error."""
    if not error:
        return "-"
    kind, message = error.get("type"), error.get("message")
    return ": ".join(str(part) for part in (kind, message) if part) or text(error)


class Output:
    """Where and how a command prints.

    Args:
        json: print one JSON document instead of tables and sentences.
        colour: use terminal colours.
        terminal: stdout is a terminal, so live views may redraw in place.
    """

    def __init__(self, *, json: bool, colour: bool, terminal: bool = False, stdout: TextIO | None = None) -> None:
        self.json = json
        self.colour = colour and not json
        self.terminal = terminal
        self.stdout = stdout or sys.stdout

    def document(self, value: Any) -> None:
        """``value`` (structs, lists, dicts) as indented JSON with camelCase names."""
        self.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")

    def result(self, value: Any, message: str) -> None:
        """What a command did: ``value`` as the JSON document with ``--output json``, else ``message``."""
        if self.json:
            self.document(value)
        else:
            self.line(message)

    def hint(self, message: str) -> None:
        """A note for people beside the output (where the next page starts): on stderr, out of pipes."""
        print(message, file=sys.stderr)

    def compact(self, value: Any) -> None:
        """``value`` as one line of JSON (for streams: one document per line)."""
        self.stdout.write(msgspec.json.encode(value).decode() + "\n")
        self.stdout.flush()

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """An aligned table; just the headers when there are no rows."""
        self.stdout.write(format_table(headers, rows, colour=self.colour) + "\n")

    def line(self, message: str = "") -> None:
        """One line for people, flushed: live commands print as things happen, also into a pipe."""
        self.stdout.write(message + "\n")
        self.stdout.flush()

    def raw(self, chunk: bytes) -> None:
        """Bytes as they are (a downloaded file)."""
        self.stdout.flush()
        binary = getattr(self.stdout, "buffer", None)
        if binary is None:
            self.stdout.write(chunk.decode())
        else:
            binary.write(chunk)
            binary.flush()

    def fields(self, pairs: Sequence[tuple[str, str]]) -> None:
        """``Name:  value`` lines, the values aligned."""
        width = max(len(name) for name, _ in pairs) + 1
        for name, value in pairs:
            self.line(f"{(name + ':').ljust(width)}  {value}")

    def status(self, status: str) -> str:
        """An upper-case status, coloured on a terminal."""
        label = status.upper()
        colour = STATUS_COLOURS.get(status.lower())
        return painted(label, colour) if self.colour and colour else label
