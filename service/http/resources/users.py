"""`/v2/accounts/{ACCOUNT_ID}/users[/{USER_ID}]` (a subset of cb_users).

The pipeline has already checked the account (404), the token (401) and the tree rule
(403). Users are validated by `schemas/users.json`; passwords become hashes in the
store (service/stores/users.py) and are never answered.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.http import conditional
from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.paging import page_request, paging_envelope
from service.http.resources.base import collection_or_item
from service.http.services import SERVICES, Services
from service.kazoo import errors
from service.kazoo.documents import WriteContext
from service.kazoo.ids import encoded_account_db
from service.kazoo.users import user_view
from service.stores.users import UserConflict, UserNotFound

Json = dict[str, Any]

COLLECTION_METHODS = ("GET", "PUT")
ITEM_METHODS = ("GET", "POST", "PATCH", "DELETE")


class UsersResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return collection_or_item(args, COLLECTION_METHODS, ITEM_METHODS)

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        services = ctx.request.app[SERVICES]
        try:
            if not args:
                if ctx.method == "GET":
                    return await _summary(ctx, services)
                return await _create(ctx, services)
            return await _item(ctx, services, args[0])
        except UserNotFound as missing:
            raise errors.bad_document_id(str(missing)) from None
        except UserConflict:
            raise errors.conflict() from None


def _account_id(ctx: RequestContext) -> str:
    assert ctx.account_id is not None
    return ctx.account_id


def _write_context(ctx: RequestContext) -> WriteContext:
    account_id = _account_id(ctx)
    return WriteContext(
        account_id=account_id,
        encoded_account_db=encoded_account_db(account_id),
        request_id=ctx.request_id,
        auth_account_id=ctx.auth.account_id if ctx.auth else None,
        auth_user_id=ctx.auth.owner_id if ctx.auth else None,
    )


def _respond(ctx: RequestContext, doc: Json, status: int, *, deleted: bool = False) -> web.Response:
    view = user_view(doc)
    if deleted:
        view["_read_only"] = {"deleted": True}
    return render(ctx, success_body(ctx, view, revision=doc.get("_rev")), status)


async def _summary(ctx: RequestContext, services: Services) -> web.StreamResponse:
    request = page_request(ctx, services.settings.page_size)
    page = await services.users.page(_account_id(ctx), request)
    body = success_body(ctx, [row.get("value") for row in page.rows])
    body.update(paging_envelope(request, page))
    return render(ctx, body, 200)


async def _create(ctx: RequestContext, services: Services) -> web.StreamResponse:
    # Validation before preconditions, as Crossbar orders them (§1 steps 8-9).
    body = services.users.validated(ctx.data)
    conditional.check_write(ctx, None)
    saved = await services.users.create(_account_id(ctx), body, _write_context(ctx))
    response = _respond(ctx, saved, 201)
    response.headers["Location"] = f"/v2/accounts/{ctx.account_id}/users/{saved['_id']}"
    return response


async def _item(ctx: RequestContext, services: Services, user_id: str) -> web.StreamResponse:
    store = services.users
    account_id = _account_id(ctx)
    # KAZOO validates a POST body before it looks the doc up: 400 wins over 404 (§7.5).
    posted = store.validated(ctx.data) if ctx.method == "POST" else None
    stored = await store.get(account_id, user_id)
    if ctx.method == "GET":
        return _read(ctx, stored)
    body = posted
    if ctx.method == "PATCH":
        # The merged document is validated before preconditions, as for a POST (§1).
        body = store.patched(stored, ctx.data)
    conditional.check_write(ctx, stored["_rev"])
    if body is None:  # DELETE
        deleted = await store.soft_delete(account_id, stored, _write_context(ctx))
        return _respond(ctx, deleted, 200, deleted=True)
    saved = await store.replace(account_id, stored, body, _write_context(ctx))
    return _respond(ctx, saved, 200)


def _read(ctx: RequestContext, stored: Json) -> web.StreamResponse:
    etag = conditional.etag(stored["_rev"])
    if conditional.check_read(ctx, stored["_rev"]):
        return web.Response(status=304, headers={"ETag": etag})
    response = _respond(ctx, stored, 200)
    response.headers["ETag"] = etag
    return response
