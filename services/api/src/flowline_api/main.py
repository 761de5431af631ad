"""The api process: serves the REST API with uvicorn."""

from __future__ import annotations

import uvicorn
from flowline.ops import configure_logging, proxy_options
from flowline.settings import load_settings

from flowline_api.app import create_app


def main() -> None:
    """Entry point of ``flowline-api``."""
    settings = load_settings().require_connections()
    configure_logging("api", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        **proxy_options(settings.trusted_proxies),
    )
