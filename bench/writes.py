"""Writes as the account grows, and writes spread over many accounts.

A write's own cost should not depend on how many docs the account already holds, nor on
whether traffic lands on one account or on a thousand (service/numbers/did_guard.py).
Each trunk here has the shape the issue measured: 2 servers, 10 DIDs nobody uses yet.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.couchdb.client import CouchClient
from service.kazoo.ids import new_id
from service.stores.accounts import AccountStore

from .data import AccountRef, public_doc
from .ledger import Ledger
from .plan import Plan
from .runner import OpFn, Pair, Watched, interleaved
from .setup import SEED, build_index, fill, new_account
from .workloads import (
    DID_VIEW,
    Client,
    UnexpectedAnswer,
    connectivity_path,
    encode,
    stored_like,
)

Json = dict[str, Any]


def issue_trunk(rng: random.Random, realm: str) -> Json:
    """2 servers, 5 new DIDs each."""
    doc = public_doc(rng, realm)
    while len(doc["servers"]) < 2:
        doc = public_doc(rng, realm)
    doc["servers"] = doc["servers"][:2]
    fresh = public_doc(rng, realm)  # numbers nobody has seen: the generator counts up
    numbers = [n for s in fresh["servers"] for n in s["DIDs"]]
    while len(numbers) < 10:
        numbers += [n for s in public_doc(rng, realm)["servers"] for n in s["DIDs"]]
    for index, server in enumerate(doc["servers"]):
        server["DIDs"] = {n: {} for n in numbers[index * 5 : index * 5 + 5]}
    return doc


@dataclass(frozen=True)
class WritesAtSize:
    docs: int
    put: Pair  # concurrency 16


def without_dids(trunk: Json) -> Json:
    """The same trunk routing no number: a write with nothing to check or assign."""
    for server in trunk["servers"]:
        server["DIDs"] = {}
    return trunk


def put_into(
    client: Client,
    rng: random.Random,
    pick: Callable[[int], tuple[AccountRef, str]],
    shape: Callable[[Json], Json] = lambda trunk: trunk,
) -> tuple[OpFn, OpFn]:
    async def api(index: int, _worker: int) -> None:
        account, token = pick(index)
        body = encode({"data": shape(issue_trunk(rng, account.realm))})
        await client.api("PUT", connectivity_path(account), token, 201, body)

    async def raw(index: int, _worker: int) -> None:
        account, _token = pick(index)
        public = shape(issue_trunk(rng, account.realm))
        doc = {"_id": new_id(), **stored_like(public, account)}
        await client.couch("PUT", client.doc_url(account.db, doc["_id"]), 201, encode(doc))

    return api, raw


async def writes_at_sizes(
    couch: CouchClient,
    client: Client,
    ledger: Ledger,
    plan: Plan,
    watched: Watched,
    progress: Callable[[str], None],
) -> list[WritesAtSize]:
    rng = random.Random(SEED + 3)
    store = AccountStore(couch)
    rows = []
    for size in plan.write_sizes:
        progress(f"PUT into an account of {size:,} docs")
        account, token = await new_account(store, client, ledger, f"Bench writes {size}")
        await fill(couch, account, size, rng)
        # What a first write would wait for once, excluded from the timing.
        await build_index(client, account, DID_VIEW)
        api, raw = put_into(client, rng, lambda _i, a=account, t=token: (a, t))
        pair = await puts_at_sixteen(f"PUT into {size:,} docs", api, raw, plan, watched)
        rows.append(WritesAtSize(size, pair))
    return rows


async def spread_writes(
    client: Client,
    children: list[tuple[AccountRef, str]],
    token: str,
    plan: Plan,
    watched: Watched,
) -> Pair:
    """PUTs over `children`, each account written once or twice by each side."""
    rng = random.Random(SEED + 4)
    order = list(children)
    rng.shuffle(order)

    # Each side walks the accounts on its own: over the repeats, an account gets one
    # write from each side, then (past len(order) writes) a second.
    turns = {"api": itertools.count(), "raw": itertools.count()}

    def picker(side: str) -> Callable[[int], tuple[AccountRef, str]]:
        return lambda _index: (order[next(turns[side]) % len(order)][0], token)

    api, _ = put_into(client, rng, picker("api"))
    _, raw = put_into(client, rng, picker("raw"))
    ops = max(16, min(len(order), plan.runs["PUT (create)"].ops(16) * 2))
    return await interleaved(
        f"PUT over {len(order):,} accounts",
        api,
        raw,
        ops=ops,
        concurrency=16,
        repeats=plan.scaling_repeats,
        watched=watched,
    )


STEPS = ("validate", "dids", "ownership", "save", "assign")


async def write_steps(
    client: Client, account: AccountRef, token: str, count: int
) -> dict[str, dict[str, float]]:
    """Mean ms per step of PUT, POST and PATCH at concurrency 1, from the service's own
    `Server-Timing` answer header (service/timing.py); `total` is the whole request."""
    rng = random.Random(SEED + 5)
    headers = client.api_headers(token)
    sums: dict[str, dict[str, float]] = {}

    async def send(op: str, method: str, path: str, expect: int, body: Json) -> Json:
        url = client.service_url + path
        started = time.perf_counter()
        async with client.session.request(method, url, data=encode(body), headers=headers) as resp:
            raw = await resp.read()
            if resp.status != expect:
                raise UnexpectedAnswer(f"{method} {path}: {resp.status} {raw[-300:]!r}")
            timing = resp.headers.get("Server-Timing", "")
        elapsed = (time.perf_counter() - started) * 1000
        row = sums.setdefault(op, {"total": 0.0, **{step: 0.0 for step in STEPS}})
        row["total"] += elapsed
        for part in timing.split(","):
            name, _, duration = part.strip().partition(";dur=")
            if name in row:
                row[name] += float(duration)
        return dict(json.loads(raw)["data"])

    ids = []
    for _ in range(count):
        created = await send(
            "PUT", "PUT", connectivity_path(account), 201, {"data": issue_trunk(rng, account.realm)}
        )
        ids.append(created["id"])
    for doc_id in ids:
        body = {"data": issue_trunk(rng, account.realm)}
        await send("POST", "POST", connectivity_path(account, f"/{doc_id}"), 200, body)
    for doc_id in ids:
        body = {"data": {"name": f"patched {doc_id[:6]}"}}
        await send("PATCH", "PATCH", connectivity_path(account, f"/{doc_id}"), 200, body)
    return {op: {k: v / count for k, v in row.items()} for op, row in sums.items()}


def steps_table(steps: dict[str, dict[str, float]]) -> list[str]:
    header = f"{'write':<8}" + "".join(f"{name:>11}" for name in (*STEPS, "total"))
    lines = [header, "-" * len(header)]
    for op, row in steps.items():
        lines.append(f"{op:<8}" + "".join(f"{row[name]:>11.2f}" for name in (*STEPS, "total")))
    lines.append("mean ms per step at concurrency 1 (Server-Timing); dids and ownership run side")
    lines.append("by side; total is the whole request as the client saw it")
    return lines


async def claims_writes(
    couch: CouchClient, client: Client, ledger: Ledger, plan: Plan, watched: Watched
) -> Pair:
    """PUTs at concurrency 16 through a service that claims new DIDs in CouchDB."""
    rng = random.Random(SEED + 6)
    account, token = await new_account(AccountStore(couch), client, ledger, "Bench claims")
    api, raw = put_into(client, rng, lambda _i: (account, token))
    return await puts_at_sixteen("PUT, claims on", api, raw, plan, watched)


async def writes_without_dids(
    couch: CouchClient, client: Client, ledger: Ledger, plan: Plan, watched: Watched
) -> Pair:
    """PUTs of the issue's trunk with its DIDs taken out, at concurrency 16: no DID check,
    no ownership read, no assignment. What any design of the DID rules can at best reach."""
    rng = random.Random(SEED + 7)
    account, token = await new_account(AccountStore(couch), client, ledger, "Bench no DIDs")
    api, raw = put_into(client, rng, lambda _i: (account, token), without_dids)
    return await puts_at_sixteen("PUT, no DIDs", api, raw, plan, watched)


async def puts_at_sixteen(name: str, api: OpFn, raw: OpFn, plan: Plan, watched: Watched) -> Pair:
    """A PUT pair at concurrency 16, measured as the main table measures PUTs."""
    runs = plan.runs["PUT (create)"]
    return await interleaved(
        name,
        api,
        raw,
        ops=runs.ops(16),
        concurrency=16,
        repeats=runs.repeats,
        watched=watched,
        warmup=runs.warmup_ops(16),
    )
