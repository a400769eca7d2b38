"""Accounts and documents the benchmark works on, and a check that the API sees them."""

from __future__ import annotations

import json
import random
import time

from service.accounts import AccountStore
from service.couchdb import CouchClient
from service.kazoo_doc import public_view

from .data import AccountRef, bulk_load, check_shape, generated_docs, public_doc
from .plan import Plan
from .workloads import (
    KAZOO_LISTING_VIEW,
    LISTING_VIEW,
    Client,
    Fixture,
    Pool,
    connectivity_path,
    encode,
    view_url,
)

SEED = 8


async def new_account(
    store: AccountStore, client: Client, name: str, parent: AccountRef | None = None
) -> tuple[AccountRef, str]:
    """An account as `create-account` makes it, and a token from `PUT /v2/api_auth`."""
    created = await store.create(name, None, parent.id if parent else None)
    doc = created.doc
    ref = AccountRef(
        id=doc["_id"], db=doc["pvt_account_db"].replace("%2F", "/"), realm=doc["realm"]
    )
    raw = await client.fetch(
        "PUT",
        client.service_url + "/v2/api_auth",
        {"Content-Type": "application/json"},
        201,
        encode({"data": {"api_key": doc["pvt_api_key"]}}),
    )
    return ref, str(json.loads(raw)["auth_token"])


async def fill(
    couch: CouchClient, account: AccountRef, count: int, rng: random.Random
) -> tuple[list[str], list[dict[str, object]]]:
    docs = generated_docs(rng, account, count)
    await bulk_load(couch, account, docs)
    return [str(doc["_id"]) for doc in docs], docs


async def build_index(client: Client, account: AccountRef, view: str = LISTING_VIEW) -> float:
    """Seconds CouchDB takes to answer the first listing query (it builds the view)."""
    started = time.perf_counter()
    await client.couch("GET", view_url(client, account, "reduce=false&limit=1", view), 200)
    return time.perf_counter() - started


async def prepare(couch: CouchClient, client: Client, plan: Plan, notes: dict[str, str]) -> Fixture:
    rng = random.Random(SEED)
    store = AccountStore(couch)
    main, main_token = await new_account(store, client, "Bench main")
    writes, writes_token = await new_account(store, client, "Bench writes")
    check_shape(rng, main.realm)
    started = time.perf_counter()
    main_ids, main_docs = await fill(couch, main, plan.main_docs - plan.api_docs, rng)
    seconds = time.perf_counter() - started
    notes["_bulk_docs load"] = f"{len(main_ids) / seconds:,.0f} docs/s"
    for _ in range(plan.api_docs):
        body = encode({"data": public_doc(rng, main.realm)})
        raw = await client.api("PUT", connectivity_path(main), main_token, 201, body)
        main_ids.append(json.loads(raw)["data"]["id"])
    update_ids, _ = await fill(couch, writes, plan.update_pool, rng)
    consumed = 2 * plan.consumed_per_side("DELETE (soft)")
    delete_ids, _ = await fill(couch, writes, consumed, rng)
    fixture = Fixture(
        main=main,
        main_ids=main_ids,
        writes=writes,
        update_ids=update_ids,
        delete_pool=Pool(delete_ids),
        bodies=[public_doc(rng, writes.realm) for _ in range(32)],
        tokens={main.id: main_token, writes.id: writes_token},
    )
    notes["first listing query, 10k docs (index build)"] = (
        f"connectivity/listing {await build_index(client, main):.2f} s, "
        f"KAZOO's trunkstore/crossbar_listing "
        f"{await build_index(client, main, KAZOO_LISTING_VIEW):.2f} s"
    )
    await sanity_check(client, fixture, main_docs[0], plan.main_docs)
    return fixture


async def sanity_check(client: Client, fx: Fixture, loaded: dict[str, object], total: int) -> None:
    """The API shows bulk-loaded docs as its own and lists all of them."""
    token = fx.tokens[fx.main.id]
    one = json.loads(
        await client.api("GET", connectivity_path(fx.main, f"/{loaded['_id']}"), token, 200)
    )
    if one["data"] != public_view(dict(loaded)):
        raise AssertionError("a bulk-loaded doc does not read back as the API would show it")
    page = json.loads(await client.api("GET", connectivity_path(fx.main), token, 200))
    if len(page["data"]) != 50 or "next_start_key" not in page:
        raise AssertionError(f"the first page has {len(page['data'])} ids")
    everything = await client.api("GET", connectivity_path(fx.main, "?paginate=false"), token, 200)
    if len(json.loads(everything)["data"]) != total:
        raise AssertionError("paginate=false does not list every doc")
