"""`GET /v2/accounts/{ACCOUNT_ID}/apps_store[/{APP_ID}]` (a subset of cb_apps_store).

Monster UI logs the user out when this answer fails (monster-ui apps/auth/app.js), and opens the PBX
Connector only when it is listed with `name: "pbxs"` (monster-ui-pbxs). The records are
`service/kazoo/apps.py`'s; anything below an app (its icon, screenshots) is 404.
"""

from __future__ import annotations

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.resources.base import collection_or_item
from service.kazoo import apps, errors


class AppsStoreResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return collection_or_item(args, ("GET",), ("GET",))

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        if not args:
            return render(ctx, success_body(ctx, apps.catalogue()), 200)
        record = apps.app(args[0])
        if record is None:
            raise errors.bad_document_id(args[0])
        return render(ctx, success_body(ctx, record), 200)
