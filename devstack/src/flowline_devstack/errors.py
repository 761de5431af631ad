"""Errors raised while starting or stopping the local development stack."""

from __future__ import annotations


class DevStackError(Exception):
    """A local server or service could not be started, checked or stopped."""


class PortInUseError(DevStackError):
    """A port the stack needs is taken by another process."""


class PostgresError(DevStackError):
    """The private PostgreSQL cluster could not be created, started or stopped."""


class BrokerError(DevStackError):
    """The local Tansu broker could not be started."""


class ServiceError(DevStackError):
    """A Flowline service exited early or did not become healthy in time."""
