"""Choosing free TCP ports and failing clearly when a configured one is taken."""

from __future__ import annotations

import socket

from flowline.settings import env_name

from flowline_devstack.errors import PortInUseError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind ``host:port`` now.

    SO_REUSEADDR is set, as PostgreSQL, uvicorn and Tansu set it, so connections
    lingering in TIME_WAIT do not count as the port being in use.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_in_use_message(port: int, setting_field: str) -> str:
    """The error text for a taken port, naming the variable that moves it."""
    return f"port {port} is already in use; set {env_name(setting_field)} to another port"


def ensure_port_free(port: int, setting_field: str, host: str = "127.0.0.1") -> None:
    """Raise unless ``host:port`` can be bound.

    Args:
        port: the port a server is about to listen on.
        setting_field: the ``Settings`` field the port came from, named in the error.
        host: the address the server will bind.

    Raises:
        PortInUseError: another process holds the port.
    """
    if not port_is_free(port, host):
        raise PortInUseError(port_in_use_message(port, setting_field))


def port_accepts_connections(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something listening on ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
