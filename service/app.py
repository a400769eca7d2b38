"""The aiohttp application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .config import Settings
from .couch_runtime import CouchHandle, open_couch
from .couchdb import CouchClient, CouchUnreachable
from .middleware import kazoo_middleware
from .pipeline import dispatch
from .services import SERVICES, Services
from .validation import SchemaValidator, schema_path

log = logging.getLogger(__name__)

COUCH_HANDLE = web.AppKey("couch_handle", CouchHandle)


async def heartbeat(request: web.Request) -> web.Response:
    """Kinto-style health check: 503 while CouchDB does not answer."""
    up = await request.app[SERVICES].client.is_up()
    return web.json_response({"couchdb": up}, status=200 if up else 503)


async def lb_heartbeat(_request: web.Request) -> web.Response:
    """For load balancers: the process is alive, whatever CouchDB says."""
    return web.json_response({})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[kazoo_middleware], client_max_size=settings.max_upload_size)
    app.router.add_get("/__heartbeat__", heartbeat)
    app.router.add_get("/__lbheartbeat__", lb_heartbeat)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app.cleanup_ctx.append(_couch_context(settings))
    return app


def _couch_context(settings: Settings):  # type: ignore[no-untyped-def]
    async def couch(app: web.Application) -> AsyncIterator[None]:
        handle = await open_couch(settings)
        app[COUCH_HANDLE] = handle
        client = CouchClient(handle.url, timeout=settings.couch_timeout)
        await client.open()
        validator = SchemaValidator.from_file(schema_path(), strict=settings.strict_validation)
        services = Services.build(settings, client, validator)
        app[SERVICES] = services
        await _bootstrap(services)
        yield
        await client.close()
        await handle.close()

    return couch


async def _bootstrap(services: Services) -> None:
    """System databases and the signing key; CouchDB may be down, then later requests retry."""
    try:
        await services.accounts.ensure_system_databases()
        await services.signing_key.get()
    except CouchUnreachable:
        log.warning("couchdb unreachable at start-up; will retry on demand")
