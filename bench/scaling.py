"""How costs grow: listing with more docs, many accounts, the first list of an account."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.couchdb.client import CouchClient
from service.kazoo.start_keys import encode_start_key
from service.stores.accounts import AccountStore

from . import procstat
from .data import AccountRef, public_doc, small_public_doc, stored_doc
from .ledger import Ledger, bounded
from .plan import CONCURRENCIES, Plan
from .runner import Pair, Watched, interleaved
from .setup import SEED, account_ref, build_index, fill, new_account
from .workloads import Client, Fixture, Pairing, connectivity_path, list_page, view_url
from .writes import spread_writes


@dataclass(frozen=True)
class ListingAtSize:
    docs: int
    load_seconds: float | None  # None: the main account, loaded in the set-up
    index_seconds: float | None
    first_page: Pair
    middle_page: Pair


def middle_page(client: Client, account: AccountRef, token: str, ids: list[str]) -> Pairing:
    middle = sorted(ids)[len(ids) // 2]
    path = connectivity_path(account, f"?start_key={encode_start_key(middle)}")
    url = view_url(
        client, account, f"reduce=false&descending=true&limit=51&startkey=%22{middle}%22"
    )

    async def api(_index: int, _worker: int) -> None:
        await client.api("GET", path, token, 200)

    async def raw(_index: int, _worker: int) -> None:
        await client.couch("GET", url, 200)

    return Pairing("list a middle page", api, raw)


async def listing_at_sizes(
    couch: CouchClient,
    client: Client,
    ledger: Ledger,
    fx: Fixture,
    plan: Plan,
    watched: Watched,
    progress: Callable[[str], None],
) -> list[ListingAtSize]:
    rng = random.Random(SEED + 1)
    store = AccountStore(couch)
    rows = []
    for size in plan.scaling_sizes:
        load_seconds = index_seconds = None
        if size == len(fx.main_ids):
            account, ids = fx.main, fx.main_ids
        else:
            progress(f"loading an account with {size:,} docs")
            account, token = await new_account(store, client, ledger, f"Bench {size}")
            fx.tokens[account.id] = token
            started = time.perf_counter()
            ids, _ = await fill(couch, account, size, rng, small_public_doc)
            load_seconds = time.perf_counter() - started
            index_seconds = await build_index(client, account)
        token = fx.tokens[account.id]
        progress(f"listing an account with {size:,} docs")
        pairs = []
        for pairing in (list_page(client, fx, account), middle_page(client, account, token, ids)):
            pairs.append(
                await interleaved(
                    pairing.name,
                    pairing.api,
                    pairing.raw,
                    ops=plan.scaling_ops,
                    concurrency=1,
                    repeats=plan.scaling_repeats,
                    watched=watched,
                    warmup=5,
                )
            )
        rows.append(ListingAtSize(size, load_seconds, index_seconds, pairs[0], pairs[1]))
    return rows


@dataclass(frozen=True)
class ManyAccounts:
    accounts: int
    create_seconds: float
    first_list_api_ms: float
    second_list_api_ms: float
    first_view_raw_ms: float
    second_view_raw_ms: float
    get_pairs: list[Pair]
    spread_put: Pair
    service_rss_mb: float


async def _timed_ms(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def many_accounts(
    couch: CouchClient,
    client: Client,
    ledger: Ledger,
    plan: Plan,
    watched: Watched,
    progress: Callable[[str], None],
) -> ManyAccounts:
    rng = random.Random(SEED + 2)
    store = AccountStore(couch)
    reseller, token = await new_account(store, client, ledger, "Bench reseller")
    progress(f"creating {plan.accounts:,} accounts under one reseller")
    children: list[tuple[AccountRef, str]] = []

    async def create(index: int) -> None:
        created = await store.create(f"Customer {index}", None, reseller.id)
        account = ledger.add(account_ref(created.doc))
        stored = stored_doc(public_doc(rng, account.realm), account)
        await couch.put_doc(account.db, stored)
        children.append((account, stored["_id"]))

    started = time.perf_counter()
    await bounded(list(range(plan.accounts)), create)
    create_seconds = time.perf_counter() - started

    # Fresh accounts: nothing cached, view never built. Half listed through the API,
    # half through the view directly.
    samples = plan.first_list_samples
    api_first, api_second, raw_first, raw_second = [], [], [], []
    for account, _ in children[:samples]:
        path = connectivity_path(account)
        api_first.append(await _timed_ms(lambda p=path: client.api("GET", p, token, 200)))
        api_second.append(await _timed_ms(lambda p=path: client.api("GET", p, token, 200)))
    for account, _ in children[samples : 2 * samples]:
        url = view_url(client, account, "reduce=false&descending=true&limit=51")
        raw_first.append(await _timed_ms(lambda u=url: client.couch("GET", u, 200)))
        raw_second.append(await _timed_ms(lambda u=url: client.couch("GET", u, 200)))

    progress(f"GET across {plan.accounts:,} accounts with the reseller's token")

    def pick(index: int) -> tuple[AccountRef, str]:
        return children[(index * 7919) % len(children)]

    async def api(index: int, _worker: int) -> None:
        account, doc_id = pick(index)
        await client.api("GET", connectivity_path(account, f"/{doc_id}"), token, 200)

    async def raw(index: int, _worker: int) -> None:
        account, doc_id = pick(index)
        await client.couch("GET", client.doc_url(account.db, doc_id), 200)

    pairs = []
    for concurrency in CONCURRENCIES:
        ops = plan.runs["GET one doc"].ops(concurrency)
        pairs.append(
            await interleaved(
                f"GET one doc, {plan.accounts:,} accounts",
                api,
                raw,
                ops=ops,
                concurrency=concurrency,
                repeats=plan.scaling_repeats,
                watched=watched,
            )
        )
    progress(f"PUT across {plan.accounts:,} accounts with the reseller's token")
    spread_put = await spread_writes(client, children, token, plan, watched)
    return ManyAccounts(
        accounts=plan.accounts,
        create_seconds=create_seconds,
        first_list_api_ms=statistics.median(api_first),
        second_list_api_ms=statistics.median(api_second),
        first_view_raw_ms=statistics.median(raw_first),
        second_view_raw_ms=statistics.median(raw_second),
        get_pairs=pairs,
        spread_put=spread_put,
        service_rss_mb=procstat.rss_mb(watched.service_pid),
    )
