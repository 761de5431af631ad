"""The log levels of the task log routes."""

from __future__ import annotations

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")
