"""`/v2/accounts/{ACCOUNT_ID}/phone_numbers[/{NUMBER}]` (a subset of cb_phone_numbers).

* `GET …/phone_numbers`: the account's numbers, from the copies in its database
  (`phone_numbers/crossbar_listing`), as `{"numbers": {"+1…": {state, used_by, …}},
  "cascade_quantity": 0}` with Crossbar's paging; `filter_state=["in_service",…]`
  keeps the numbers in those states (Monster UI's PBX Connector asks so, monster-ui-pbxs);
* `PUT …/phone_numbers/{NUMBER}`: create a number assigned to the account (201);
* `GET …/phone_numbers/{NUMBER}`, `DELETE …/phone_numbers/{NUMBER}` (`?hard=true`).

`{NUMBER}` is URL-encoded (`%2B14155550100`) or any form KAZOO normalises (`4155550100`).
The pipeline has already checked the account (404), the token (401) and the tree rule
(403); the number rules live in `service/numbers/phone_numbers.py`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from service.http.context import RequestContext, is_true
from service.http.csv_answer import listing_answer
from service.http.envelope import render, success_body
from service.http.paging import page_request, paging_envelope
from service.http.resources.base import collection_or_item
from service.http.services import SERVICES, Services
from service.kazoo.ids import account_db
from service.numbers.docs import InStates, listing_entry, public_json, wanted_states
from service.numbers.phone_numbers import Requester

Json = dict[str, Any]

COLLECTION_METHODS = ("GET",)
ITEM_METHODS = ("GET", "PUT", "DELETE")


class PhoneNumbersResource:
    needs_auth = True

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        return collection_or_item(args, COLLECTION_METHODS, ITEM_METHODS)

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse:
        services = ctx.request.app[SERVICES]
        if not args:
            return await _summary(ctx, services)
        numbers = services.phone_numbers
        assert ctx.auth is not None and ctx.account_id is not None
        requester = Requester.of(ctx.auth.account)
        if ctx.method == "PUT":
            created = await numbers.create(args[0], ctx.account_id, requester, ctx.data)
            # cb_phone_numbers answers a created number with 201 and no Location.
            return _respond(ctx, public_json(created), created.get("_rev"), 201)
        if ctx.method == "DELETE":
            hard = is_true(ctx.req_value("hard", False))
            removed = await numbers.remove(args[0], requester, hard=hard)
            return _respond(ctx, public_json(removed.number, deleted=removed.deleted), None, 200)
        number = await numbers.get(args[0], requester)
        return _respond(ctx, public_json(number), number.get("_rev"), 200)


def _respond(ctx: RequestContext, data: Json, revision: str | None, status: int) -> web.Response:
    return render(ctx, success_body(ctx, data, revision=revision), status)


async def _summary(ctx: RequestContext, services: Services) -> web.StreamResponse:
    assert ctx.account_id is not None
    db = account_db(ctx.account_id)
    request = page_request(ctx, services.settings.page_size)
    states = wanted_states(ctx.req_value("filter_state"))
    if states is not None:
        request = replace(request, doc_filter=InStates(states))

    page = await services.phone_numbers.store.account_page(db, request)
    numbers = {row["key"]: listing_entry(row.get("value") or {}) for row in page.rows}
    # KAZOO's cascade_quantity comes from its services (billing) documents, which this
    # service does not keep.
    data = {"numbers": numbers, "cascade_quantity": 0}
    # As CSV, a row per number (KAZOO would flatten `data` into one row of
    # `numbers_+1415…_state` columns).
    rows = [{"id": number, **entry} for number, entry in numbers.items()]
    return listing_answer(ctx, data, paging_envelope(request, page), csv_rows=rows)
