"""`/v2/accounts/{ACCOUNT_ID}/connectivity[/{CONNECTIVITY_ID}]` (cb_connectivity).

Thin on purpose: each verb maps to one operation of the connectivity document layer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import ParamSpec, TypeVar
from urllib.parse import quote

from aiohttp import web

from service.http import conditional
from service.http.context import RequestContext, is_false
from service.http.csv_answer import listing_answer
from service.http.envelope import GET_EXPIRES, RenderedJson, render, success_body
from service.http.paging import page_request, paging_envelope
from service.http.resources.base import collection_or_item
from service.http.services import SERVICES, Services
from service.kazoo.documents import WriteContext
from service.kazoo.ids import account_db, encoded_account_db
from service.stores.connectivity import did_count

COLLECTION_METHODS = ("GET", "PUT")
ITEM_METHODS = ("GET", "POST", "PATCH", "DELETE")

# Validating a body with this many DIDs or more takes ~10 ms (0.5 s for 50,000): it runs
# in a worker thread, so that the event loop keeps answering other requests meanwhile
# (README, Big trunks). Below, the hand-over would cost more than it saves.
OFF_LOOP_DIDS = 1_000

P = ParamSpec("P")
T = TypeVar("T")


async def _validating(dids: int, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`check(*args)`, in a worker thread when the document has many DIDs.

    The validator is safe to share: jsonschema keeps each run's state apart, and its
    memo of small valid objects is a dict written whole under the GIL.
    """
    if dids < OFF_LOOP_DIDS:
        return check(*args, **kwargs)
    return await asyncio.to_thread(check, *args, **kwargs)


class ConnectivityResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return collection_or_item(args, COLLECTION_METHODS, ITEM_METHODS)

    def read_ahead(self, ctx: RequestContext, account_id: str, args: list[str]) -> bool:
        """A write that may add DIDs, or a PATCH (whose stored numbers are checked
        again), starts its DID check's reads now (stores/connectivity.py)."""
        writes = ctx.method == "PUT" if not args else ctx.method in ("POST", "PATCH")
        if not writes or len(args) > 1:
            return False
        services = ctx.request.app[SERVICES]
        merges = ctx.method == "PATCH"
        return services.connectivity.read_ahead(account_db(account_id), ctx.data, merges=merges)

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        services = ctx.request.app[SERVICES]
        if not args:
            if ctx.method == "GET":
                return await _summary(ctx, services)
            return await _create(ctx, services)
        doc_id = args[0]
        if ctx.method == "GET":
            return await _read(ctx, services, doc_id)
        if ctx.method == "DELETE":
            return await _delete(ctx, services, doc_id)
        return await _update(ctx, services, doc_id)


def _db(ctx: RequestContext) -> str:
    assert ctx.account_id is not None
    return account_db(ctx.account_id)


def _realm(ctx: RequestContext) -> str | None:
    realm = (ctx.account or {}).get("realm")
    return realm if isinstance(realm, str) and realm else None


def _write_context(ctx: RequestContext) -> WriteContext:
    assert ctx.account_id is not None
    return WriteContext(
        account_id=ctx.account_id,
        encoded_account_db=encoded_account_db(ctx.account_id),
        request_id=ctx.request_id,
        auth_account_id=ctx.auth.account_id if ctx.auth else None,
        auth_user_id=ctx.auth.owner_id if ctx.auth else None,
    )


async def _summary(ctx: RequestContext, services: Services) -> web.StreamResponse:
    db = _db(ctx)
    request = replace(
        page_request(ctx, services.settings.page_size, query_filters=True), ids_only=True
    )

    page = await services.connectivity.page(db, request, ctx.request.query_string)
    return listing_answer(ctx, [row["id"] for row in page.rows], paging_envelope(request, page))


async def _create(ctx: RequestContext, services: Services) -> web.StreamResponse:
    # Crossbar validates (resource_exists) before it evaluates preconditions: a bad body
    # is 400 even with an If-Match (§1 steps 8-9; found by schemathesis).
    store = services.connectivity
    doc, doc_id = await _validating(did_count(ctx.data), store.validated_new, ctx.data, _realm(ctx))
    # No document exists yet, so any If-Match fails (§13).
    conditional.check_write(ctx, None)
    saved = await store.create(_db(ctx), doc, doc_id, _write_context(ctx))
    _flush_registrations(ctx, services)
    response = render(ctx, success_body(ctx, saved.view, revision=saved.revision), 201)
    # A client-chosen id may hold any character (NUL, spaces, emoji): percent-encoded,
    # the header stays valid and the path leads back to the document.
    location_id = quote(saved.doc["_id"], safe="")
    response.headers["Location"] = f"/v2/accounts/{ctx.account_id}/connectivity/{location_id}"
    return response


async def _read(ctx: RequestContext, services: Services, doc_id: str) -> web.StreamResponse:
    view = await services.connectivity.load_view(_db(ctx), doc_id)
    headers = {"ETag": conditional.etag(view.revision), "Expires": GET_EXPIRES}
    if conditional.check_read(ctx, view.revision):
        return web.Response(status=304, headers=headers)
    data = RenderedJson(view.public)
    response = render(ctx, success_body(ctx, data, revision=view.revision), 200)
    response.headers.update(headers)
    return response


async def _update(ctx: RequestContext, services: Services, doc_id: str) -> web.StreamResponse:
    store = services.connectivity
    db = _db(ctx)
    if ctx.method == "POST":
        # KAZOO validates a POST body before it looks the doc up: 400 wins over 404 (§7.5).
        validated = await _validating(did_count(ctx.data), store.validated, ctx.data, _realm(ctx))
        stored = await store.load(db, doc_id)
        conditional.check_write(ctx, stored["_rev"])
        saved = await store.replace(db, stored, validated, _write_context(ctx))
    else:
        stored = await store.load(db, doc_id)
        # The merged document is validated before preconditions, as for a PUT (§1).
        dids = did_count(stored) + did_count(ctx.data)
        patched = await _validating(dids, store.patched, stored, ctx.data, _realm(ctx))
        conditional.check_write(ctx, stored["_rev"])
        saved = await store.patch(db, stored, patched, _write_context(ctx))
    return render(ctx, success_body(ctx, saved.view, revision=saved.revision), 200)


async def _delete(ctx: RequestContext, services: Services, doc_id: str) -> web.StreamResponse:
    store = services.connectivity
    db = _db(ctx)
    stored = await store.load(db, doc_id)
    conditional.check_write(ctx, stored["_rev"])
    if is_false(ctx.req_value("should_soft_delete")):
        saved = await store.hard_delete(db, stored)
    else:
        saved = await store.soft_delete(db, stored, _write_context(ctx))
    _flush_registrations(ctx, services)
    return render(ctx, success_body(ctx, saved.view, revision=saved.revision), 200)


def _flush_registrations(ctx: RequestContext, services: Services) -> None:
    """cb_connectivity: a trunk created or deleted flushes its realm's SIP registrations."""
    realm = _realm(ctx)
    if services.events is not None and realm is not None:
        services.events.registrations_flushed(realm)
