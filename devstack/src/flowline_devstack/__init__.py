"""The local development stack: a private PostgreSQL, a Tansu broker and the services as processes."""

from flowline_devstack.broker import TansuBroker
from flowline_devstack.errors import (
    BrokerError,
    DevStackError,
    PortInUseError,
    PostgresError,
    ServiceError,
)
from flowline_devstack.ports import ensure_port_free, free_port
from flowline_devstack.postgres import PrivatePostgres
from flowline_devstack.processes import SERVICE_NAMES, ServiceGroup, ServiceProcess

__all__ = [
    "SERVICE_NAMES",
    "BrokerError",
    "DevStackError",
    "PortInUseError",
    "PostgresError",
    "PrivatePostgres",
    "ServiceError",
    "ServiceGroup",
    "ServiceProcess",
    "TansuBroker",
    "ensure_port_free",
    "free_port",
]
