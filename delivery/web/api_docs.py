"""The API's documentation page at /schema: the operations in plain HTML and a link to the OpenAPI
document. Swagger UI and friends load their scripts from a CDN and start with an inline script,
which our Content-Security-Policy rightly blocks (the pages came up blank); a client generator or a
desktop tool reads /schema/openapi.json instead."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

METHODS = ("get", "post", "put", "patch", "delete")


class ApiDocsPage(OpenAPIRenderPlugin):
    """Served at /schema and at /schema/swagger (where people used to find the docs)."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"], favicon="", style="")

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        operations = [(method.upper(), path, op.get("summary", ""), op.get("description", ""))
                      for path, item in openapi_schema.get("paths", {}).items()
                      for method, op in item.items() if method in METHODS]
        template = request.app.template_engine.get_template("api_docs.html")  # type: ignore[union-attr]
        return template.render(info=openapi_schema.get("info", {}), operations=operations,
                               json_url=self.get_openapi_json_route(request),
                               csp_nonce=request.scope["state"].get("csp_nonce", "")).encode()
