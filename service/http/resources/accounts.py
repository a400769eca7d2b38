"""`/v2/accounts[/{ACCOUNT_ID}[/children|descendants|api_key]]` (a subset of cb_accounts).

The pipeline has already checked the target account (404), the token (401) and the
tree rule (403); what is left is KAZOO's account semantics, kept in AccountStore.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from aiohttp import web

from service.http import conditional
from service.http.context import RequestContext, is_true
from service.http.csv_answer import listing_answer
from service.http.envelope import render, success_body
from service.http.paging import page_request, paging_envelope
from service.http.services import SERVICES, Services
from service.kazoo import errors
from service.kazoo.documents import merge_patch, public_fields, public_view, replace_public_fields
from service.stores import listing
from service.stores.accounts import (
    AccountConflict,
    AccountError,
    ParentNotFound,
    RealmTaken,
)

Json = dict[str, Any]

ACCOUNT_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")
LISTINGS = {"children": "listing_by_children", "descendants": "listing_by_descendants"}
# Keys KAZOO never takes from a client's account body (cb_accounts cleanup_leaky_keys).
LEAKY_KEYS = ("wnm_allow_additions", "superduper_admin", "billing_mode", "api_key", "id")


class AccountsResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        if not args:
            return ACCOUNT_METHODS
        if len(args) == 1 and args[0] in LISTINGS:
            return ("GET",)
        if len(args) == 1 and args[0] == "api_key":
            return ("GET", "PUT")
        return None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        services = ctx.request.app[SERVICES]
        if ctx.account is None:
            # `PUT /v2/accounts`: a child of the caller's own account.
            if ctx.method != "PUT":
                raise errors.method_not_allowed(["PUT"])
            assert ctx.auth is not None
            return await _create_child(ctx, services, ctx.auth.account)
        if args and args[0] in LISTINGS:
            return await _listing(ctx, services, LISTINGS[args[0]])
        if args:
            return await _api_key(ctx, services)
        if ctx.method == "GET":
            return _respond(ctx, ctx.account, 200)
        if ctx.method == "PUT":
            return await _create_child(ctx, services, ctx.account)
        if ctx.method == "DELETE":
            return await _delete(ctx, services)
        return await _update(ctx, services)


def account_view(ctx: RequestContext, doc: Json) -> Json:
    """The public view plus the private facts KAZOO leaks to clients (cb_accounts)."""
    view = public_view(doc)
    tree = doc.get("pvt_tree") or []
    view["superduper_admin"] = doc.get("pvt_superduper_admin") is True
    view["enabled"] = doc.get("pvt_enabled", True) is not False
    view["created"] = doc.get("pvt_created")
    view["reseller_id"] = tree[-1] if tree else doc["_id"]
    view["is_reseller"] = doc.get("pvt_reseller") is True or not tree
    # Monster UI's myaccount app rewrites the whole account (a POST) at every login when
    # the key is missing (monster-ui apps/myaccount/app.js); an empty object is what
    # that POST would store.
    view.setdefault("ui_restrictions", {})
    if is_true(ctx.query.get("include_api_key")):
        view["api_key"] = doc.get("pvt_api_key")
    return view


def _respond(ctx: RequestContext, doc: Json, status: int) -> web.Response:
    response = render(
        ctx, success_body(ctx, account_view(ctx, doc), revision=doc.get("_rev")), status
    )
    if ctx.method == "GET":
        response.headers["ETag"] = conditional.etag(doc["_rev"])
    return response


def _validated(services: Services, body: Json) -> Json:
    candidate = public_fields(body)
    for key in LEAKY_KEYS:
        candidate.pop(key, None)
    if isinstance(candidate.get("realm"), str):
        # KAZOO strips spaces from realms (cb_accounts ?REMOVE_SPACES).
        candidate["realm"] = candidate["realm"].replace(" ", "")
    result = services.account_validator.validate(candidate)
    if not result.ok or result.value is None:
        raise errors.validation_error(result.errors)
    return result.value


def _realm_taken(realm: str) -> errors.KazooError:
    return errors.validation_error(
        {"realm": {"unique": {"message": "Account realm already in use", "cause": realm}}}
    )


async def _create_child(
    ctx: RequestContext, services: Services, parent: Json
) -> web.StreamResponse:
    # Validation before preconditions, as Crossbar orders them (§1 steps 8-9).
    data = _validated(services, ctx.data)
    conditional.check_write(ctx, None)
    try:
        created = await services.accounts.create(data["name"], data.get("realm"), parent["_id"])
    except RealmTaken:
        raise _realm_taken(str(data.get("realm"))) from None
    except ParentNotFound:
        raise errors.unknown_account(parent["_id"]) from None
    except AccountError as exc:
        raise errors.validation_error({"realm": {"invalid": {"message": str(exc)}}}) from None
    doc = created.doc
    extras = {k: v for k, v in data.items() if k not in ("name", "realm")}
    if extras:
        doc.update(extras)
        doc = await services.accounts.save(doc, previous_realm=doc["realm"])
    response = _respond(ctx, doc, 201)
    response.headers["Location"] = f"/v2/accounts/{doc['_id']}"
    return response


async def _update(ctx: RequestContext, services: Services) -> web.StreamResponse:
    stored = copy.deepcopy(ctx.account or {})
    if ctx.method == "PATCH":
        body = merge_patch(public_fields(stored), public_fields(ctx.data))
    else:
        body = ctx.data
    # Validation before preconditions, as Crossbar orders them (§1 steps 8-9).
    data = _validated(services, body)
    conditional.check_write(ctx, stored.get("_rev"))
    if "realm" not in data:
        data["realm"] = stored.get("realm")
    enabled = data.pop("enabled", None)
    doc = replace_public_fields(stored, data)
    if enabled is not None and _is_ancestor(ctx, stored):
        # Only an ancestor may switch an account on or off (cb_accounts maybe_import_enabled).
        doc["pvt_enabled"] = enabled
    try:
        saved = await services.accounts.save(doc, previous_realm=stored.get("realm"))
    except RealmTaken:
        raise _realm_taken(str(data.get("realm"))) from None
    except AccountConflict:
        raise errors.conflict() from None
    return _respond(ctx, saved, 200)


def _is_ancestor(ctx: RequestContext, target: Json) -> bool:
    return ctx.auth is not None and ctx.auth.account_id in (target.get("pvt_tree") or [])


async def _delete(ctx: RequestContext, services: Services) -> web.StreamResponse:
    stored = copy.deepcopy(ctx.account or {})
    if not stored.get("pvt_tree"):
        # KAZOO never deletes the master account: DELETE is not among its methods.
        raise errors.method_not_allowed(["GET", "PUT", "POST", "PATCH"])
    conditional.check_write(ctx, stored.get("_rev"))
    if await services.accounts.has_live_descendants(stored["_id"]):
        raise errors.account_has_descendants()
    revision = stored["_rev"]
    try:
        deleted = await services.accounts.soft_delete(stored)
    except AccountConflict:
        raise errors.conflict() from None
    view = account_view(ctx, deleted)
    view["_read_only"] = {"deleted": True}
    return render(ctx, success_body(ctx, view, revision=revision), 200)


async def _listing(ctx: RequestContext, services: Services, view: str) -> web.StreamResponse:
    assert ctx.account_id is not None
    request = page_request(ctx, services.settings.page_size)
    request = replace(_bounded(request, ctx.account_id), ids_only=True)

    page = await services.accounts.page(view, request)
    return listing_answer(ctx, [row["id"] for row in page.rows], paging_envelope(request, page))


def _bounded(request: listing.PageRequest, account_id: str) -> listing.PageRequest:
    """Keys are [account_id, child_id]: keep the range inside this account's rows."""
    low, high = [account_id], [account_id, {}]
    start = request.start_key
    if not (isinstance(start, list) and start[:1] == [account_id]):
        # A start key from another account's range would leak its rows.
        start = None
    if request.descending:
        return replace(request, start_key=start if start is not None else high, end_key=low)
    return replace(request, start_key=start if start is not None else low, end_key=high)


async def _api_key(ctx: RequestContext, services: Services) -> web.StreamResponse:
    stored = copy.deepcopy(ctx.account or {})
    if ctx.method == "PUT":
        conditional.check_write(ctx, stored.get("_rev"))
        try:
            stored = await services.accounts.rotate_api_key(stored)
        except AccountConflict:
            raise errors.conflict() from None
    return render(ctx, success_body(ctx, {"api_key": stored.get("pvt_api_key")}), 200)
