"""`/v2/auth/tokeninfo`: what a token says, for a client that holds one (cb_auth).

Monster UI logs back in this way, from its cookie or a `?t=` link, without sending the
token as `X-Auth-Token` (MUI §1): `POST` with `{"data": {"token": …}}`, or `GET` with
`?token=…`. The token is checked as kz_auth:validate_token/2 checks it (signature,
expiry, identity); the answer is a login's (auth_answer.py) with the token echoed.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.auth.tokens import TokenInvalid
from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.resources.auth_answer import auth_answer
from service.http.services import SERVICES
from service.kazoo import errors

TOKENINFO = "tokeninfo"


class AuthResource:
    # The token is in the body or query, not X-Auth-Token: it is checked here.
    needs_auth = False

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return ("GET", "POST") if args == [TOKENINFO] else None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        services = ctx.request.app[SERVICES]
        token = _given_token(ctx)
        try:
            auth = await services.authenticator.validate(token)
        except TokenInvalid:
            raise errors.invalid_credentials() from None
        ctx.auth_token = token
        answer = auth_answer(auth.account, auth.owner_id)
        return render(ctx, success_body(ctx, answer), 200)


def _given_token(ctx: RequestContext) -> str:
    value: Any
    if ctx.method == "GET":
        value, missing = ctx.query.get("token"), "missing token in params"
    else:
        value, missing = ctx.data.get("token"), "missing token in request"
    if not isinstance(value, str) or not value:
        raise errors.missing_token(missing)
    return value
