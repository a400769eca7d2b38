"""The aiohttp application factory."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from service import fast_json
from service.config import Settings
from service.couchdb.client import CouchClient, CouchError, CouchUnreachable
from service.couchdb.runtime import CouchHandle, open_couch
from service.couchdb.view_maintenance import VIEW_CHECK, start_view_check, stop_view_check
from service.http.envelope import JSON_TYPE
from service.http.middleware import kazoo_middleware
from service.http.pipeline import dispatch
from service.http.server import IN_FLIGHT, InFlight, track_in_flight
from service.http.services import SERVICES, Services
from service.kazoo.validation import SchemaValidator, schema_path

log = logging.getLogger(__name__)

COUCH_HANDLE = web.AppKey("couch_handle", CouchHandle)


async def heartbeat(request: web.Request) -> web.Response:
    """Kinto-style health check: 503 while CouchDB does not answer. The broker's state is
    reported, but never fails it: writes do not depend on the broker."""
    services = request.app[SERVICES]
    up = await services.client.is_up()
    body: dict[str, object] = {"couchdb": up}
    if services.events is not None:
        body["amqp"] = services.events.state()
    return _json(body, 200 if up else 503)


async def lb_heartbeat(_request: web.Request) -> web.Response:
    """For load balancers: the process is alive, whatever CouchDB says."""
    return _json({}, 200)


def _json(body: dict[str, bool], status: int) -> web.Response:
    # The same exact Content-Type as every other JSON answer (http/envelope.py).
    return web.Response(status=status, body=fast_json.dumps(body), content_type=JSON_TYPE)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[track_in_flight, kazoo_middleware], client_max_size=settings.max_upload_size
    )
    app[IN_FLIGHT] = InFlight()
    app.router.add_get("/__heartbeat__", heartbeat)
    app.router.add_get("/__lbheartbeat__", lb_heartbeat)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    app.cleanup_ctx.append(_couch_context(settings))
    return app


def _couch_context(settings: Settings):  # type: ignore[no-untyped-def]
    async def couch(app: web.Application) -> AsyncIterator[None]:
        handle = await open_couch(settings)
        app[COUCH_HANDLE] = handle
        handle.supervise(on_give_up=_stop_serving)
        client = CouchClient(
            handle.url,
            timeout=settings.couch_timeout,
            view_timeout=settings.couch_view_timeout,
        )
        await client.open()
        # One connection per followed database, and one to spare.
        feeds = CouchClient(
            handle.url,
            timeout=settings.couch_timeout,
            connections=settings.read_cache_databases + 1,
        )
        await feeds.open()
        validator = SchemaValidator.from_file(schema_path(), strict=settings.strict_validation)
        services = Services.build(settings, client, validator, feeds)
        app[SERVICES] = services
        if services.events is not None:
            services.events.start()
        await _bootstrap(services)
        services.account_cache.start()
        if services.roster is not None:
            services.roster.start()
        # Design docs of every account db, checked without delaying start-up.
        app[VIEW_CHECK] = start_view_check(client)
        yield
        if services.events is not None:
            # The requests have finished: what they wrote gets a chance to go out.
            await services.events.close(settings.shutdown_grace)
        await stop_view_check(app[VIEW_CHECK])
        await services.account_cache.stop()
        if services.roster is not None:
            await services.roster.stop()
        services.reads.stop()
        services.did_index.stop()
        if services.did_claims is not None:
            await services.did_claims.stop()
        await services.feeds.stop()
        await feeds.close()
        await client.close()
        await handle.close()

    return couch


def _stop_serving() -> None:
    # The embedded CouchDB is gone for good: stop the way an operator's SIGTERM would
    # (in-flight requests finish, everything is closed); `serve` then exits non-zero.
    os.kill(os.getpid(), signal.SIGTERM)


def couch_gave_up(app: web.Application) -> bool:
    handle = app.get(COUCH_HANDLE)
    return handle is not None and handle.gave_up


async def _bootstrap(services: Services) -> None:
    """System databases and the signing key; CouchDB may be down, then later requests retry."""
    try:
        await services.accounts.ensure_system_databases()
        await services.keys.signing_key()
        if services.did_claims is not None:
            await services.did_claims.ensure_database()
    except CouchUnreachable:
        log.warning("couchdb unreachable at start-up; will retry on demand")
    except CouchError as exc:
        # E.g. a wrong admin password (401) or a user without admin rights (403): the
        # service still starts, and every request CouchDB refuses is a 503
        # `datastore_fault` (README, Errors) until the operator fixes the credentials.
        log.error("couchdb refused the service at start-up", extra={"couch_status": exc.status})
