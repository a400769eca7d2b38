"""`GET /v2/openapi.json`: the OpenAPI 3.1 description of this service, no token needed.

The answer is the document itself, not wrapped in KAZOO's envelope, so that OpenAPI
tools can load it straight from the URL.
"""

from __future__ import annotations

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import JSON_TYPE
from service.http.openapi_doc import served_bytes


class OpenApiResource:
    needs_auth = False

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return ("GET",) if not args else None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        return web.Response(body=served_bytes(), content_type=JSON_TYPE)
