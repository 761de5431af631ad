"""The API's documentation: the OpenAPI document, Swagger UI at /docs (and /docs/swagger), ReDoc at /redoc.

The pages load their scripts and styles only from the api itself (``static/apidocs``, vendored with their versions
and licenses), so they work offline and behind a firewall.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import MediaType, Request, get
from litestar.datastructures import CacheControlHeader, ResponseHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/docs/assets"
_SWAGGER_UI = f"{ASSETS_PATH}/swagger-ui-dist-5.36.0"
_REDOC_JS = f"{ASSETS_PATH}/redoc-2.5.4/redoc.standalone.js"
# An empty icon: Litestar's default one comes from a CDN, and without any the browser asks for /favicon.ico.
_NO_FAVICON = "<link rel='icon' href='data:,'>"

_REDOC = RedocRenderPlugin(js_url=_REDOC_JS, google_fonts=False, favicon=_NO_FAVICON)

docs_assets = create_static_files_router(
    ASSETS_PATH,
    directories=[Path(__file__).parent / "static" / "apidocs"],
    name="docs_assets",
    # Each package's folder is named with its version, so a file under one URL never changes.
    cache_control=CacheControlHeader(max_age=365 * 24 * 3600, public=True, immutable=True),
)


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document at ``/docs/openapi.json``, with the bearer credentials every tenant route needs."""
    swagger_ui = SwaggerRenderPlugin(
        path=["/", "/swagger"],  # /docs/swagger: where it was before it became the default page
        js_url=f"{_SWAGGER_UI}/swagger-ui-bundle.js",
        css_url=f"{_SWAGGER_UI}/swagger-ui.css",
        standalone_preset_js_url=f"{_SWAGGER_UI}/swagger-ui-standalone-preset.js",  # Litestar's page loads it
        favicon=_NO_FAVICON,
    )
    return OpenAPIConfig(
        title="Flowline",
        version="0.1.0",
        path="/docs",
        use_handler_docstrings=True,
        render_plugins=[swagger_ui],
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


@get(
    "/redoc",
    media_type=MediaType.HTML,
    include_in_schema=False,
    sync_to_thread=False,
    # ReDoc's sidebar shows Redocly's logo from their CDN (hidden when it fails to load): the page loads no
    # image from elsewhere.
    response_headers=[ResponseHeader(name="Content-Security-Policy", value="img-src 'self' data:")],
)
def redoc(request: Request[Any, Any, Any]) -> bytes:
    """The OpenAPI document rendered by ReDoc."""
    # At the root, where the management API Flowline reproduces serves it; Litestar would serve its renderers only
    # under the document's path (/docs/redoc).
    return _REDOC.render(request, request.app.openapi_schema.to_schema())
