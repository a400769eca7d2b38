"""`/v2/token_auth`: describe (GET) or revoke (DELETE) the token of the request."""

from __future__ import annotations

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.services import SERVICES


class TokenAuthResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return ("GET", "DELETE") if not args else None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        assert ctx.auth is not None and ctx.auth.token_id is not None
        claims = ctx.auth.claims
        exp = claims.get("exp")
        description = {
            "account_id": ctx.auth.account_id,
            "owner_id": ctx.auth.owner_id,
            "method": claims.get("method"),
            "expires_at": exp,
        }
        if ctx.method == "DELETE":
            services = ctx.request.app[SERVICES]
            expires_at = float(exp) if isinstance(exp, int | float) else None
            await services.revocations.revoke(ctx.auth.token_id, expires_at, ctx.auth.account_id)
            description["revoked"] = True
        return render(ctx, success_body(ctx, description), 200)
