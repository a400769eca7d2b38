"""`PATCH /v2/accounts/{ACCOUNT_ID}/auth/identity_secret`: a new identity secret (cb_auth).

`{"data": {}}` gives the account a new `pvt_signature_secret`, `{"data": {"owner_id": U}}`
gives user U one: every token of that identity stops verifying (§10.2), as KAZOO's
crossbar_auth:reset_identity_secret/1 does. The pipeline has already checked the account
(404), the token (401) and the tree rule (403).
"""

from __future__ import annotations

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.services import SERVICES
from service.kazoo import errors
from service.stores.identities import IdentityGone

IDENTITY_SECRET = "identity_secret"


class AccountAuthResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return ("PATCH",) if args == [IDENTITY_SECRET] else None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        assert ctx.account_id is not None
        owner_id = ctx.data.get("owner_id")
        if owner_id is not None and not (isinstance(owner_id, str) and owner_id):
            raise errors.validation_error(
                {
                    "owner_id": {
                        "type": {
                            "message": "Value did not match type(s): string",
                            "target": "string",
                            "value": owner_id,
                        }
                    }
                }
            )
        services = ctx.request.app[SERVICES]
        try:
            await services.identity_secrets.reset_identity(ctx.account_id, owner_id)
        except IdentityGone:
            raise errors.bad_document_id(str(owner_id)) from None
        return render(ctx, success_body(ctx, {}), 200)
