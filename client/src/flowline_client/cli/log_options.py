"""The options ``executions logs`` and ``tasks logs`` share: level, attempt, a text search with context, and pages."""

from __future__ import annotations

import argparse
from typing import Any

from flowline_client.cli.arguments import UsageError
from flowline_client.cli.live import LEVELS


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """Add the filters, the search and the paging options of a log page."""
    parser.add_argument("--level", type=str.upper, choices=LEVELS, help="this level and above")
    parser.add_argument("--attempt", type=int, metavar="N", help="one attempt's records (1 for the first)")
    parser.add_argument(
        "-g",
        "--grep",
        "--search",
        dest="search",
        metavar="TEXT",
        help="records whose message contains TEXT, in any case (a page may hold fewer than --limit: see its hint)",
    )
    parser.add_argument(
        "-C", "--context", type=int, default=0, metavar="N", help="with --grep: N records before and after each match"
    )
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--cursor", help="start where the page before ended (its hint names the cursor)")


def log_query(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``get_execution_logs``/``get_task_logs`` the options ask for.

    Raises:
        UsageError: ``--context`` without ``--grep``, or a search with ``--follow`` (which prints every record).
    """
    if args.context and args.search is None:
        raise UsageError("--context: shows records around the matches of --grep; give --grep too")
    if args.follow and (args.search is not None or args.cursor or args.offset):
        raise UsageError("--follow prints every record as it comes: leave out --grep, --cursor and --offset")
    return {
        "level": args.level,
        "attempt": args.attempt,
        "search": args.search,
        "context": args.context,
        "limit": args.limit,
        "offset": args.offset,
        "cursor": args.cursor,
    }
