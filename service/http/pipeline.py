"""The request pipeline in Crossbar's order, so the same error wins (§1).

body/envelope (400/413) → expired token (401) → path (404) → verb (405) →
account (404) → rate limit (429) → authentication (401) → authorization (403) →
Accept (406) → resource validation and execution.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from service.auth.authenticate import AccountExpired
from service.auth.tokens import TokenExpired, TokenInvalid, may_act_on
from service.http.body import media_type, read_body
from service.http.context import AuthInfo, RequestContext
from service.http.envelope import cors_headers, wants_cors
from service.http.negotiation import preferred_body
from service.http.resources.account_auth import AccountAuthResource
from service.http.resources.accounts import AccountsResource
from service.http.resources.api_auth import ApiAuthResource
from service.http.resources.apps_store import AppsStoreResource
from service.http.resources.auth import AuthResource
from service.http.resources.base import ReadsAhead, Resource
from service.http.resources.connectivity import ConnectivityResource
from service.http.resources.openapi import OpenApiResource
from service.http.resources.phone_numbers import PhoneNumbersResource
from service.http.resources.schemas import SchemasResource
from service.http.resources.token_auth import TokenAuthResource
from service.http.resources.user_auth import UserAuthResource
from service.http.resources.users import UsersResource
from service.http.services import SERVICES, Services
from service.kazoo import errors
from service.kazoo.ids import is_raw_account_id, is_storable_account_id

KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"})
TUNNELLED_VERBS = frozenset({"PUT", "DELETE", "PATCH", "POST"})
WRITE_METHODS = frozenset({"PUT", "POST", "PATCH"})
PREFLIGHT_FALLBACK_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE")

ACCOUNT_RESOURCES: dict[str, Resource] = {
    "connectivity": ConnectivityResource(),
    "phone_numbers": PhoneNumbersResource(),
    "auth": AccountAuthResource(),
    "users": UsersResource(),
    "apps_store": AppsStoreResource(),
}
TOP_RESOURCES: dict[str, Resource] = {
    "api_auth": ApiAuthResource(),
    "token_auth": TokenAuthResource(),
    "auth": AuthResource(),
    "user_auth": UserAuthResource(),
    "schemas": SchemasResource(),
    "openapi.json": OpenApiResource(),
}
ACCOUNTS: Resource = AccountsResource()
# Checked once here: an isinstance of a runtime protocol costs ~10 µs a request.
READING_AHEAD: tuple[ReadsAhead, ...] = tuple(
    resource for resource in ACCOUNT_RESOURCES.values() if isinstance(resource, ReadsAhead)
)

CTX_KEY = web.RequestKey("kazoo_ctx", RequestContext)


@dataclass(frozen=True)
class Route:
    resource: Resource
    args: list[str]
    account_id: str | None = None


def path_tokens(request: web.Request) -> list[str]:
    """Path segments, each URL-decoded; a trailing slash is ignored (§13)."""
    raw = request.rel_url.raw_path
    segments = raw.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()
    return [unquote(segment) for segment in segments]


def resolve(tokens: list[str]) -> Route:
    if tokens[:1] == ["v1"]:
        raise errors.gone_v1()
    if len(tokens) < 2 or tokens[0] != "v2":
        raise errors.not_found()
    if tokens[1] == "accounts":
        return _account_route(tokens[2:])
    top = TOP_RESOURCES.get(tokens[1])
    if top is None:
        raise errors.not_found()
    return Route(resource=top, args=tokens[2:])


def _account_route(rest: list[str]) -> Route:
    """`/v2/accounts[/{ACCOUNT_ID}[/{module}[/…]]]`: a module below an account, or the
    accounts resource itself (which also answers its own sub-paths such as `children`)."""
    if not rest:
        return Route(resource=ACCOUNTS, args=[])
    account_id, below = rest[0], rest[1:]
    module = ACCOUNT_RESOURCES.get(below[0]) if below else None
    if module is not None:
        return Route(resource=module, args=below[1:], account_id=account_id)
    return Route(resource=ACCOUNTS, args=below, account_id=account_id)


async def dispatch(request: web.Request) -> web.StreamResponse:
    ctx: RequestContext = request[CTX_KEY]
    services = request.app[SERVICES]
    # KAZOO's cowboy answers 501 to a method outside KNOWN_METHODS (§1 step 2). Issue #7
    # wants no 5xx for any client input, so TRACE, CONNECT or WebDAV verbs get the 405
    # `invalid_method` (with Allow) of the verb check below, like any other verb the
    # path does not allow.
    await _read_request_body(ctx, services)
    _tunnel_verb(ctx)
    ctx.auth_token = _supplied_token(ctx)
    signed = await _reject_expired_token(ctx, services)
    ctx.path_tokens = path_tokens(request)
    if ctx.method == "OPTIONS" and wants_cors(request):
        return _preflight(ctx)
    route = resolve(ctx.path_tokens)
    allowed = route.resource.allowed_methods(route.args)
    if allowed is None:
        raise errors.not_found()
    ctx.allowed_methods = allowed
    if ctx.method == "OPTIONS":
        # Without CORS headers OPTIONS is just a method this resource does not allow.
        raise errors.method_not_allowed(list(allowed))
    if ctx.method not in allowed:
        raise errors.method_not_allowed(list(allowed))
    reader = next((r for r in READING_AHEAD if r is route.resource), None)
    if signed and reader is not None and _storable(route.account_id):
        # Only for a correctly signed token: an anonymous caller starts no CouchDB reads.
        assert route.account_id is not None
        if reader.read_ahead(ctx, route.account_id, route.args):
            # One turn of the loop: the reads just begun send their requests now, so
            # that CouchDB answers them while this request is checked and validated here
            # (every step until the DID check finishes without waiting, when what it
            # needs is in memory, and would otherwise hold them back until then).
            await asyncio.sleep(0)
    if route.account_id is not None:
        # A change to the account itself starts from its current doc, never a cached one.
        fresh = route.resource is ACCOUNTS and ctx.method != "GET"
        await _load_target_account(ctx, services, route.account_id, fresh=fresh)
    _take_tokens(ctx)
    if route.resource.needs_auth:
        await _authenticate(ctx, services)
        _authorize(ctx)
    _check_accept(ctx)
    if ctx.method in WRITE_METHODS and ctx.unsupported_type is not None:
        raise errors.unsupported_media_type(ctx.unsupported_type)
    return await route.resource.execute(ctx, route.args)


# Decoding and checking a body this big (a trunk of ~10,000 DIDs) takes ~25 ms, 0.1 s for
# 50,000 DIDs: done in a worker thread, so that the event loop keeps answering other
# requests meanwhile (README, Big trunks). Smaller bodies are not worth the hand-over.
OFF_LOOP_BODY_BYTES = 256 * 1024


async def _read_request_body(ctx: RequestContext, services: Services) -> None:
    try:
        raw = await ctx.request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.payload_too_large(services.settings.max_upload_size) from None
    content_type = media_type(ctx.request.headers.get("Content-Type"))
    if len(raw) < OFF_LOOP_BODY_BYTES:
        body = read_body(raw, content_type)
    else:
        body = await asyncio.to_thread(read_body, raw, content_type)
    ctx.envelope, ctx.data, ctx.unsupported_type = body.envelope, body.data, body.unsupported_type


def _storable(account_id: str | None) -> bool:
    return (
        account_id is not None
        and is_raw_account_id(account_id)
        and is_storable_account_id(account_id)
    )


def _tunnel_verb(ctx: RequestContext) -> None:
    # api_util:get_http_verb/2: a POST may name the verb it stands for (§13).
    if ctx.method != "POST":
        return
    verb = ctx.req_value("verb")
    if isinstance(verb, str) and verb.upper() in TUNNELLED_VERBS:
        ctx.method = verb.upper()


def _supplied_token(ctx: RequestContext) -> str | None:
    header = ctx.request.headers.get("X-Auth-Token")
    if header:
        return header
    value = ctx.req_value("auth_token")
    return value if isinstance(value, str) and value else None


async def _reject_expired_token(ctx: RequestContext, services: Services) -> bool:
    """Whether the request carries a correctly signed, live token."""
    # Crossbar's early authentication stops only a correctly signed, expired token;
    # every other bad token falls through to the 401 of is_authorized (§1 step 3).
    if ctx.auth_token is None:
        return False
    try:
        await services.authenticator.claims(ctx.auth_token)
    except TokenExpired:
        raise errors.expired_credentials() from None
    except TokenInvalid:
        return False
    return True


def _preflight(ctx: RequestContext) -> web.StreamResponse:
    """A CORS preflight: 200 with the path's verbs, no token needed (§13).

    Also for a path we do not serve (KAZOO answers 404 there): a browser that gets no
    2xx preflight never sends the request, so a UI served from another origin would
    see a network error instead of the JSON 404 it tolerates (whitelabel, alerts,
    ledgers… at Monster UI's start).
    """
    try:
        route = resolve(ctx.path_tokens)
        allowed = route.resource.allowed_methods(route.args)
    except errors.KazooError:
        allowed = None
    ctx.allowed_methods = allowed or PREFLIGHT_FALLBACK_METHODS
    return web.Response(status=200, headers=cors_headers(ctx.request, list(ctx.allowed_methods)))


async def _load_target_account(
    ctx: RequestContext, services: Services, account_id: str, *, fresh: bool = False
) -> None:
    if account_id == "":
        raise errors.missing_account_id()
    if not is_raw_account_id(account_id) or not is_storable_account_id(account_id):
        # An id CouchDB would refuse as a database name is as invalid as a short one:
        # the same 404 (docs/kazoo-compatibility.md §5.1), never the datastore's 500.
        raise errors.invalid_account_id(account_id)
    reader = services.accounts if fresh else services.account_cache
    account = await reader.get(account_id)
    # A deleted account's endpoints answer 404, unlike KAZOO (§13).
    if account is None or account.get("pvt_deleted") or account.get("pvt_type") != "account":
        raise errors.unknown_account(account_id)
    ctx.account_id, ctx.account = account_id, account


def _take_tokens(ctx: RequestContext) -> None:
    # Crossbar takes a request's tokens once the URL account is known and before the
    # credentials are checked (cb_token_auth:authenticate/3): 429 wins over 401 (§10.5).
    # Preflights and heartbeats never get here.
    if ctx.buckets is not None and not ctx.buckets.take(ctx.bucket):
        raise errors.too_many_requests()


async def _authenticate(ctx: RequestContext, services: Services) -> None:
    if ctx.auth_token is None:
        raise errors.invalid_credentials()
    try:
        auth = await services.authenticator.authenticate(
            ctx.auth_token,
            header_account_id=ctx.request.headers.get("X-Auth-Account-ID"),
            known=ctx.account,
        )
    except TokenInvalid:
        raise errors.invalid_credentials() from None
    except AccountExpired as expired:
        raise errors.account_expired(expired.expired_at) from None
    ctx.auth = AuthInfo(
        account_id=auth.account_id,
        account=auth.account,
        token=ctx.auth_token,
        claims=auth.claims,
        owner_id=auth.owner_id,
        token_id=auth.token_id,
    )


def _authorize(ctx: RequestContext) -> None:
    if ctx.account is None or ctx.auth is None:
        return
    if not may_act_on(ctx.auth.account, ctx.account):
        raise errors.forbidden()


def _check_accept(ctx: RequestContext) -> None:
    accepts = preferred_body(ctx.request.headers.get("Accept"))
    if accepts is None:
        raise errors.not_acceptable()
    ctx.accepts = accepts
