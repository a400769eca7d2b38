"""`PUT /v2/user_auth`: trade a user's hashed credentials for a token (cb_user_auth).

Monster UI logs in here (monster-ui apps/auth/app.js):
`{"data": {"credentials": md5(lower(user) ":" pass), "account_name": "…"}}`, or
`account_realm` / `phone_number` instead of the name, `method: sha` for sha1.
Wrong credentials are 401 with a JSON body (the UI shows "Invalid credentials" only
then), an expired or disabled account 423. Failures draw on the same per-client
limiter as `api_auth` (429 once used up).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.resources.auth_answer import auth_answer, login_attempt, sign_in
from service.http.services import SERVICES, Services
from service.kazoo import apps, errors
from service.kazoo.users import without_secrets
from service.stores.logins import AccountLocked, Login, LoginFailed

Json = dict[str, Any]

METHOD = "cb_user_auth"
DEFAULT_LANGUAGE = "en-us"


class UserAuthResource:
    needs_auth = False

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return ("PUT",) if not args else None

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        services = ctx.request.app[SERVICES]
        with login_attempt(ctx, services.auth_failures):
            try:
                login = await services.logins.log_in(_validated(services, ctx.data))
            except LoginFailed:
                raise errors.invalid_credentials() from None
            except AccountLocked as locked:
                raise errors.account_locked(locked.reason, locked.cause) from None
        await sign_in(ctx, services.keys, login.account, user=login.user, method=METHOD)
        return render(ctx, success_body(ctx, _answer(login)), 201)


def _validated(services: Services, data: Json) -> Json:
    result = services.user_auth_validator.validate(data)
    if not result.ok or result.value is None:
        raise errors.validation_error(without_secrets(result.errors))
    return result.value


def _answer(login: Login) -> Json:
    data = auth_answer(login.account, login.user["_id"])
    # crossbar_util:get_language/2: the user's, else the account's, else en-us.
    user, account = login.user, login.account
    data["language"] = user.get("language") or account.get("language") or DEFAULT_LANGUAGE
    # Monster UI before apps_store read the user's apps from here (its auth app's `installedApps`).
    data["apps"] = apps.catalogue()
    return data
