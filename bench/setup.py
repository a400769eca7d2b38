"""Accounts and documents the benchmark works on, and a check that the API sees them."""

from __future__ import annotations

import json
import random
import time

import aiohttp

from service.couchdb.client import CouchClient
from service.kazoo.documents import public_view
from service.kazoo.ids import account_db
from service.stores.accounts import AccountStore

from .data import (
    BULK_BATCH,
    AccountRef,
    Shape,
    bulk_load,
    check_shape,
    generated_docs,
    public_doc,
)
from .ledger import Ledger
from .plan import Plan
from .workloads import (
    DID_VIEW,
    LISTING_VIEW,
    BodyPool,
    Client,
    Fixture,
    Pool,
    connectivity_path,
    encode,
    view_url,
)

SEED = 8


async def login(session: aiohttp.ClientSession, url: str, api_key: str) -> str:
    """A token from `PUT /v2/api_auth` with an account's api key."""
    body = json.dumps({"data": {"api_key": api_key}})
    headers = {"Content-Type": "application/json"}
    async with session.put(f"{url}/v2/api_auth", data=body, headers=headers) as resp:
        answer = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"api_auth: {resp.status} {answer}")
        return str(answer["auth_token"])


def account_ref(doc: dict[str, str]) -> AccountRef:
    return AccountRef(id=doc["_id"], db=account_db(doc["_id"]), realm=doc["realm"])


async def new_account(
    store: AccountStore, client: Client, ledger: Ledger, name: str
) -> tuple[AccountRef, str]:
    """An account as `create-account` makes it, and a token from `PUT /v2/api_auth`."""
    created = await store.create(name, None, None)
    doc = created.doc
    ref = ledger.add(account_ref(doc))
    return ref, await login(client.session, client.service_url, doc["pvt_api_key"])


async def fill(
    couch: CouchClient,
    account: AccountRef,
    count: int,
    rng: random.Random,
    shape: Shape = public_doc,
) -> tuple[list[str], dict[str, object]]:
    """Loads `count` generated trunks a batch at a time; returns their ids and the first."""
    ids: list[str] = []
    first: dict[str, object] = {}
    for start in range(0, count, BULK_BATCH):
        docs = generated_docs(rng, account, min(BULK_BATCH, count - start), shape)
        await bulk_load(couch, account, docs)
        ids.extend(str(doc["_id"]) for doc in docs)
        first = first or docs[0]
    return ids, first


async def build_index(client: Client, account: AccountRef, view: str = LISTING_VIEW) -> float:
    """Seconds CouchDB takes to answer the first listing query (it builds the view)."""
    started = time.perf_counter()
    await client.couch("GET", view_url(client, account, "reduce=false&limit=1", view), 200)
    return time.perf_counter() - started


async def prepare(
    couch: CouchClient, client: Client, ledger: Ledger, plan: Plan, notes: dict[str, str]
) -> Fixture:
    rng = random.Random(SEED)
    store = AccountStore(couch)
    main, main_token = await new_account(store, client, ledger, "Bench main")
    writes, writes_token = await new_account(store, client, ledger, "Bench writes")
    check_shape(rng, main.realm)
    # The few trunks written through the API go first: every API write checks its DIDs
    # against `trunkstore/lookup_did`, and after a bulk load that first check builds the
    # index over every loaded trunk (~1 min for 10k on the embedded server).
    api_ids = []
    for _ in range(plan.api_docs):
        body = encode({"data": public_doc(rng, main.realm)})
        raw = await client.api("PUT", connectivity_path(main), main_token, 201, body)
        api_ids.append(json.loads(raw)["data"]["id"])
    started = time.perf_counter()
    main_ids, first_loaded = await fill(couch, main, plan.main_docs - plan.api_docs, rng)
    seconds = time.perf_counter() - started
    notes["_bulk_docs load"] = f"{len(main_ids) / seconds:,.0f} docs/s"
    main_ids.extend(api_ids)
    update_ids, _ = await fill(couch, writes, plan.update_pool, rng)
    consumed = 2 * plan.consumed_per_side("DELETE (soft)")
    delete_ids, _ = await fill(couch, writes, consumed, rng)
    notes[f"first DID lookup over {len(update_ids) + consumed:,} bulk-loaded trunks"] = (
        f"{await build_index(client, writes, DID_VIEW):.1f} s"
    )
    # The API's PUTs and POSTs, and the raw side's POSTs.
    fresh_bodies = plan.consumed_per_side("PUT (create)") + 2 * plan.consumed_per_side(
        "POST (replace)"
    )
    fixture = Fixture(
        main=main,
        main_ids=main_ids,
        writes=writes,
        update_ids=update_ids,
        delete_pool=Pool(delete_ids),
        bodies=[public_doc(rng, writes.realm) for _ in range(32)],
        fresh_bodies=BodyPool([public_doc(rng, writes.realm) for _ in range(fresh_bodies)]),
        tokens={main.id: main_token, writes.id: writes_token},
    )
    notes["first listing query, 10k docs (index build)"] = (
        f"trunkstore/crossbar_listing {await build_index(client, main):.2f} s"
    )
    await sanity_check(client, fixture, first_loaded, plan.main_docs)
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
