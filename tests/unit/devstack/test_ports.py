from __future__ import annotations

import socket

import pytest
from flowline_devstack.errors import PortInUseError
from flowline_devstack.ports import ensure_port_free, free_port, port_in_use_message, port_is_free


def test_the_message_names_the_variable_that_moves_the_port() -> None:
    assert port_in_use_message(8000, "api_port") == (
        "port 8000 is already in use; set FLOWLINE_API_PORT to another port"
    )


def test_a_listening_port_is_reported_in_use() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(PortInUseError, match="set FLOWLINE_DEV_KAFKA_PORT"):
            ensure_port_free(port, "dev_kafka_port")


def test_a_free_port_is_free() -> None:
    port = free_port()
    assert port_is_free(port)
    ensure_port_free(port, "api_port")
