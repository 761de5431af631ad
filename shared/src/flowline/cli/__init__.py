"""The ``flowline`` command line: the api's operations with tables, JSON output and exit codes."""

from flowline.cli.main import main

__all__ = ["main"]
