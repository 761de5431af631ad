"""The served OpenAPI document describes every workflow and pack route with an example; its pages need no CDN."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from litestar.testing import AsyncTestClient

Client = AsyncTestClient  # type: ignore[type-arg]
ROOT = "http://testserver.local"


def _has_example(operation: dict[str, Any]) -> bool:
    contents = [
        *operation.get("requestBody", {}).get("content", {}).values(),
        *(content for response in operation["responses"].values() for content in response.get("content", {}).values()),
    ]
    return any(content.get("examples") or content.get("schema", {}).get("examples") for content in contents)


async def test_every_workflow_and_pack_route_has_a_summary_a_description_and_an_example(api: Client) -> None:
    response = await api.get("http://testserver.local/docs/openapi.json")

    assert response.status_code == 200
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in response.json()["paths"].items()
        if path.startswith(("/api/v1/tenants/{tenant}/workflows", "/api/v1/tenants/{tenant}/packs"))
        for method, operation in methods.items()
    }
    assert len(operations) == 15
    assert "patch" in response.json()["paths"]["/api/v1/tenants/{tenant}/workflows/{ref}"]
    undocumented = {
        name
        for name, operation in operations.items()
        if not (operation.get("summary") and operation.get("description") and _has_example(operation))
    }
    assert undocumented == set()


async def test_every_tenant_route_documents_an_unknown_tenant_and_every_body_a_validation_problem(api: Client) -> None:
    response = await api.get("http://testserver.local/docs/openapi.json")

    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in response.json()["paths"].items()
        if path.startswith("/api/v1/tenants/{tenant}/")
        for method, operation in methods.items()
    }
    assert {name for name, operation in operations.items() if "404" not in operation["responses"]} == set()
    for status in ("401", "403", "429"):  # every tenant route needs credentials and a role, and is rate limited
        assert {name for name, operation in operations.items() if status not in operation["responses"]} == set()
    assert {name for name, operation in operations.items() if operation.get("security") != [{"bearer": []}]} == set()
    with_body = {name for name, operation in operations.items() if "requestBody" in operation}
    assert with_body
    assert {name for name in with_body if "422" not in operations[name]["responses"]} == set()


async def test_health_readiness_and_metrics_are_documented_with_their_answers(api: Client) -> None:
    document = (await api.get("http://testserver.local/docs/openapi.json")).json()
    schemas = document["components"]["schemas"]

    def answer(path: str, status: str) -> dict[str, Any]:
        [(media_type, content)] = document["paths"][path]["get"]["responses"][status]["content"].items()
        schema = content["schema"]
        return {"mediaType": media_type, **schemas.get(schema.get("$ref", "").rpartition("/")[2], schema)}

    health = answer("/health", "200")
    assert health["mediaType"] == "application/json"
    assert set(health["required"]) == {"status", "service"}
    for status in ("200", "503"):  # ready, or a dependency down: the same shape, each check's outcome by name
        ready = answer("/health/ready", status)
        assert set(ready["required"]) == {"status", "service", "checks"}
        assert ready["properties"]["status"]["enum"] == ["ok", "unavailable"]
        assert ready["properties"]["checks"]["additionalProperties"] == {"type": "string"}
    metrics = answer("/metrics", "200")
    assert (metrics["mediaType"].split(";")[0], metrics["type"]) == ("text/plain", "string")


async def test_swagger_ui_at_docs_and_redoc_at_redoc_render_the_document(api: Client) -> None:
    pages = {path: await api.get(f"{ROOT}{path}") for path in ("/docs", "/docs/swagger", "/redoc")}

    assert {path: page.status_code for path, page in pages.items()} == dict.fromkeys(pages, 200)
    assert all(page.headers["content-type"].startswith("text/html") for page in pages.values())
    assert "SwaggerUIBundle(" in pages["/docs"].text
    assert pages["/docs/swagger"].text == pages["/docs"].text  # the old address of Swagger UI still shows it
    redoc = pages["/redoc"].text
    assert "Redoc.init(" in redoc and "<title>Flowline</title>" in redoc
    assert pages["/redoc"].headers["content-security-policy"] == "img-src 'self' data:"  # not Redocly's logo
    for page in pages.values():
        assert '"/api/v1/tenants/{tenant}/workflows"' in page.text  # the document itself, embedded in the page


async def test_the_documentation_pages_load_their_scripts_and_styles_from_the_api_alone(api: Client) -> None:
    # A wrong credential would be turned away where one is needed: the pages and their files need none.
    anonymous = {"Authorization": "Bearer wrong"}
    for page_path, kinds in {"/docs": {"javascript", "css"}, "/redoc": {"javascript"}}.items():
        page = await api.get(f"{ROOT}{page_path}", headers=anonymous)
        assert page.status_code == 200, page_path
        urls = _script_and_stylesheet_urls(page.text)
        assert [url for url in urls if not url.startswith("/docs/assets/")] == [], page_path  # none elsewhere
        assert "fonts.googleapis" not in page.text

        served = set()
        for url in urls:
            asset = await api.get(f"{ROOT}{url}", headers=anonymous)
            assert asset.status_code == 200, url
            kind = asset.headers["content-type"].split(";")[0].split("/")[1]
            assert len(asset.content) > 100_000, url  # the library itself, not a stub or an error page
            assert "immutable" in asset.headers["cache-control"], url
            served.add(kind)
        assert served == kinds, page_path


def _script_and_stylesheet_urls(html: str) -> list[str]:
    """Where the page's script and link tags load from (a data: URL loads nothing)."""

    class Collector(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            attribute = {"script": "src", "link": "href"}.get(tag)
            url = dict(attrs).get(attribute) if attribute else None
            if url and not url.startswith("data:"):
                self.urls.append(url)

    collector = Collector()
    collector.feed(html)
    return collector.urls
