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
        assert ctx.auth is not None
        claims = ctx.auth.claims
        description = {
            "account_id": ctx.auth.account_id,
            "method": claims.get("method"),
            "issued_at": claims.get("iat"),
            "expires_at": claims.get("exp"),
            "owner_id": claims.get("owner_id"),
        }
        if ctx.method == "DELETE":
            services = ctx.request.app[SERVICES]
            await services.revocations.revoke(
                str(claims.get("jti")), float(claims["exp"]), ctx.auth.account_id
            )
            description["revoked"] = True
        return render(ctx, success_body(ctx, description), 200)
