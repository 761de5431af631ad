"""The Python client of the Flowline api: ``AsyncFlowlineClient``, its blocking twin ``FlowlineClient``."""

from flowline_client._async import AsyncFlowlineClient, LogFormat
from flowline_client.errors import FlowlineApiError
from flowline_client.sync import FlowlineClient

__all__ = ["AsyncFlowlineClient", "FlowlineApiError", "FlowlineClient", "LogFormat"]
