"""The one place where every outcome becomes a KAZOO response (§3, §5)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from service import timing
from service.couchdb.client import (
    CouchError,
    CouchFault,
    CouchRefused,
    CouchTimeout,
    CouchUnreachable,
)
from service.http.client_address import client_address
from service.http.context import RequestContext
from service.http.envelope import cors_headers, error_body, render, wants_cors
from service.http.pipeline import CTX_KEY
from service.http.services import SERVICES
from service.kazoo import errors
from service.kazoo.errors import KazooError
from service.kazoo.ids import new_id

log = logging.getLogger("service.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALL_METHODS = ["GET", "PUT", "POST", "PATCH", "DELETE"]


def error_response(ctx: RequestContext, error: KazooError) -> web.Response:
    response = render(ctx, error_body(ctx, error), error.status)
    response.headers.update(error.headers)
    # KAZOO adds CORS headers to every error response (api_util:default_stop/2).
    response.headers.update(cors_headers(ctx.request, _allowed(ctx)))
    return response


def _allowed(ctx: RequestContext) -> list[str]:
    return list(ctx.allowed_methods) if ctx.allowed_methods else ALL_METHODS


def _as_kazoo_error(ctx: RequestContext, exc: Exception) -> KazooError:
    if isinstance(exc, KazooError):
        return exc
    if isinstance(exc, CouchFault):
        return errors.datastore_answered_fault(exc.status)
    if isinstance(exc, CouchTimeout):
        return errors.datastore_timeout()
    if isinstance(exc, CouchRefused):
        return errors.datastore_refused()
    if isinstance(exc, CouchUnreachable):
        return errors.datastore_unreachable()
    if isinstance(exc, CouchError):
        log.error(
            "unexpected couchdb answer", extra={"request_id": ctx.request_id, "fault": str(exc)}
        )
        return errors.datastore_fault("datastore_fault")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return errors.payload_too_large(exc.max_size if hasattr(exc, "max_size") else 0)
    if isinstance(exc, web.HTTPNotFound):
        return errors.not_found()
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return errors.method_not_allowed(sorted(exc.allowed_methods))
    if isinstance(exc, web.HTTPException):
        return KazooError(exc.status, exc.reason.lower().replace(" ", "_"), {"message": exc.reason})
    log.exception("unhandled error", extra={"request_id": ctx.request_id})
    return KazooError(500, "internal_error", {"message": "internal error"})


@web.middleware
async def kazoo_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    services = request.app.get(SERVICES)
    ctx = RequestContext(
        request=request,
        request_id=_request_id(request),
        method=request.method.upper(),
        query=request.query,
    )
    if services is not None:
        ctx.buckets = services.buckets
        ctx.client_ip = client_address(
            request.remote, request.headers.get("X-Forwarded-For"), services.reverse_proxies
        )
    request[CTX_KEY] = ctx
    steps = timing.begin()
    try:
        response = await handler(request)
        if wants_cors(request):
            response.headers.update(cors_headers(request, _allowed(ctx)))
    except Exception as exc:  # every failure must leave as a KAZOO envelope, never a bare 500
        response = error_response(ctx, _as_kazoo_error(ctx, exc))
    response.headers["X-Request-ID"] = ctx.request_id
    if steps:
        response.headers["Server-Timing"] = timing.header(steps)
    _log_request(ctx, response.status, started)
    return response


def _request_id(request: web.Request) -> str:
    """The client's X-Request-ID (§3.1), unless it could not be sent back as a header:
    bytes that are not UTF-8 arrive as lone surrogates and would make the answer a 500."""
    given = request.headers.get("X-Request-ID")
    if not given:
        return new_id()
    try:
        given.encode("utf-8")
    except UnicodeEncodeError:
        return new_id()
    return given if given.isprintable() else new_id()


def _log_request(ctx: RequestContext, status: int, started: float) -> None:
    # The path only: query strings may carry auth_token.
    log.info(
        "request",
        extra={
            "request_id": ctx.request_id,
            "account_id": ctx.account_id,
            "auth_account_id": ctx.auth.account_id if ctx.auth else None,
            "method": ctx.method,
            "path": ctx.request.rel_url.path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
