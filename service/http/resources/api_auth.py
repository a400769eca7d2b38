"""`PUT /v2/api_auth`: trade an account's api key for a token (cb_api_auth)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.resources.auth_answer import auth_answer, login_attempt, sign_in
from service.http.services import SERVICES
from service.kazoo import errors

Json = dict[str, Any]


class ApiAuthResource:
    needs_auth = False

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return ("PUT",) if not args else None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        services = ctx.request.app[SERVICES]
        with login_attempt(ctx, services.auth_failures):
            api_key = _api_key(ctx.data)
            account = await services.accounts.find_by_api_key(api_key)
            if account is None:
                # cb_api_auth answers an unknown key with crossbar_util:response_bad_identifier/2.
                raise errors.bad_document_id(api_key)
        await sign_in(ctx, services.keys, account)
        return render(ctx, success_body(ctx, auth_answer(account)), 201)


def _api_key(data: Json) -> str:
    if "api_key" not in data:
        raise errors.validation_error(
            {
                "api_key": {
                    "required": {"message": "Field is required but missing", "value": "api_key"}
                }
            }
        )
    value = data["api_key"]
    if not isinstance(value, str):
        raise errors.validation_error(
            {
                "api_key": {
                    "type": {
                        "message": "Value did not match type(s): string",
                        "target": "string",
                        "value": value,
                    }
                }
            }
        )
    if not value:
        raise errors.invalid_credentials()
    return value
