"""The local development stack: a private PostgreSQL, a Tansu broker and the services as processes."""

from flowline.devstack.broker import TansuBroker
from flowline.devstack.errors import (
    BrokerError,
    DevStackError,
    PortInUseError,
    PostgresError,
    ServiceError,
)
from flowline.devstack.ports import ensure_port_free, free_port
from flowline.devstack.postgres import PrivatePostgres
from flowline.devstack.processes import SERVICE_NAMES, ServiceGroup, ServiceProcess

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
