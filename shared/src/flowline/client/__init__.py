"""The Python client of the Flowline api: ``AsyncFlowlineClient``, its blocking twin ``FlowlineClient``."""

from flowline.client._async import AsyncFlowlineClient, LogFormat
from flowline.client.errors import FlowlineApiError
from flowline.client.sync import FlowlineClient

__all__ = ["AsyncFlowlineClient", "FlowlineApiError", "FlowlineClient", "LogFormat"]
