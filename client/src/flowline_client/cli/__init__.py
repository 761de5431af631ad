"""The ``flowline`` command line: the api's operations with tables, JSON output and exit codes."""

from flowline_client.cli.main import main

__all__ = ["main"]
