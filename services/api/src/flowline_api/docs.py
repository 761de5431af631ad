"""The API's documentation: the OpenAPI document, Scalar at /docs, Swagger UI at /docs/swagger, ReDoc at /redoc.

Like Litestar's renderers by default, the pages load their scripts and styles from public CDNs.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

_REDOC = RedocRenderPlugin()


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document at ``/docs/openapi.json``, with the bearer credentials every tenant route needs."""
    return OpenAPIConfig(
        title="Flowline",
        version="0.1.0",
        path="/docs",
        use_handler_docstrings=True,
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        components=Components(
            security_schemes={
                "bearer": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key (fl_<id>_<secret>) or a JWT with sub, tenant, roles and exp",
                )
            }
        ),
    )


@get("/redoc", media_type=MediaType.HTML, include_in_schema=False, sync_to_thread=False)
def redoc(request: Request[Any, Any, Any]) -> bytes:
    """The OpenAPI document rendered by ReDoc."""
    # At the root, where the management API Flowline reproduces serves it; Litestar would serve its renderers only
    # under the document's path (/docs/redoc).
    return _REDOC.render(request, request.app.openapi_schema.to_schema())
