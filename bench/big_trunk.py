"""`python -m bench.big_trunk [--dids N]` (`make bench-big-trunk`): one very big trunk.

A service as `make run` starts it, on the configured CouchDB (the embedded server on
leveldb, or the Apache CouchDB named by CONNECTIVITY_COUCH_URL), with
CONNECTIVITY_MAX_DIDS raised to the trunk's size. One account PUTs, GETs, POSTs (a
hundred DIDs changed), PATCHes and lists a trunk of N DIDs (50,000 by default), one after
the other; meanwhile a few clients of another account keep sending small requests (GETs
of a small trunk, and every tenth a small PUT). The table gives the time of each big
operation, and the p50/p99/max of the small requests sent while they ran: whether the
big trunk stops the service from answering anyone else.

It also times, straight on CouchDB, the first `trunkstore/lookup_did` query after the
PUT: how long CouchDB takes to index the trunk's rows (docs/embedded-couchdb.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from service.couchdb.client import CouchClient
from service.kazoo.ids import account_db
from service.stores.accounts import AccountStore

from .setup import login
from .stack import couchdb, service

SMALL_CLIENTS = 4
# Every PUT_EVERY-th small request is a PUT of a small trunk, the rest GETs of one.
PUT_EVERY = 10


# NANP numbers in E.164, as KAZOO's number manager stores them: +1 NPA NXX XXXX.
BIG_FIRST = 4_152_000_000
SMALL_DOC_FIRST = 6_462_000_000
SMALL_PUT_FIRST = 7_182_000_000


def trunk(name: str, first: int, count: int) -> dict[str, object]:
    dids: dict[str, object] = {f"+1{first + i:010d}": {} for i in range(count)}
    return {"name": name, "servers": [{"server_name": "big", "auth": {}, "DIDs": dids}]}


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass
class Api:
    session: aiohttp.ClientSession
    url: str
    account_id: str
    token: str

    async def send(
        self, method: str, suffix: str = "", data: object = None, expect: int = 200
    ) -> object:
        body = None if data is None else json.dumps({"data": data})
        headers = {"X-Auth-Token": self.token, "Content-Type": "application/json"}
        url = f"{self.url}/v2/accounts/{self.account_id}/connectivity{suffix}"
        async with self.session.request(method, url, data=body, headers=headers) as resp:
            text = await resp.text()
            if resp.status != expect:
                raise RuntimeError(f"{method} {suffix}: {resp.status} {text[:300]}")
            return json.loads(text)["data"]


@dataclass
class SmallTraffic:
    """Small requests of another account, sent until stopped; their latencies kept."""

    api: Api
    doc_id: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    puts: int = 0

    async def client(self, worker: int) -> None:
        sent = 0
        while not self.stop.is_set():
            sent += 1
            started = time.perf_counter()
            try:
                if sent % PUT_EVERY == worker % PUT_EVERY:
                    # DIDs of their own: a DID routed twice in an account is a 400.
                    self.puts += 1
                    first = SMALL_PUT_FIRST + 2 * self.puts
                    await self.api.send("PUT", "", trunk("small", first, 2), 201)
                else:
                    await self.api.send("GET", f"/{self.doc_id}")
            except (RuntimeError, aiohttp.ClientError) as exc:
                self.failures.append(str(exc)[:200])
            self.latencies.append(time.perf_counter() - started)

    def line(self, what: str) -> str:
        values = self.latencies
        if not values:
            return f"| {what} | 0 | | | | |"
        return (
            f"| {what} | {len(values)} | {percentile(values, 0.5) * 1000:.0f} ms "
            f"| {percentile(values, 0.99) * 1000:.0f} ms | {max(values) * 1000:.0f} ms "
            f"| {len(self.failures)} |"
        )


async def timed(lines: list[str], what: str, traffic: SmallTraffic, op) -> object:  # type: ignore[no-untyped-def]
    """Runs `op()` with the small traffic going, and adds its line to the table."""
    traffic.latencies, traffic.failures = [], []
    started = time.perf_counter()
    try:
        result = await op()
    except RuntimeError as exc:
        # Said in the table: the figures of a failing operation are what is asked for.
        result, outcome = None, f"failed after {time.perf_counter() - started:.2f} s ({exc})"
    else:
        outcome = f"{time.perf_counter() - started:.2f} s"
    lines.append(traffic.line(f"{what}: {outcome}"))
    print(lines[-1][:400], file=sys.stderr, flush=True)
    return result


async def listed(api: Api, patience: float = 600.0) -> object:
    """The account's listing, asked again while it is a 503: on Apache CouchDB the view
    may outlast CouchDB's own 60 s view timeout while it indexes the big trunk."""
    deadline = time.perf_counter() + patience
    while True:
        try:
            return await api.send("GET", "")
        except RuntimeError as exc:
            if " 503 " not in str(exc) or time.perf_counter() > deadline:
                raise


async def first_lookup(couch_url: str, db: str, did: str) -> None:
    """`lookup_did` asked for one of the trunk's DIDs: CouchDB indexes them all first."""
    # Its own client: the index may take longer than any request timeout we would set.
    async with CouchClient(couch_url, timeout=3600) as patient:
        rows = (await patient.view(db, "trunkstore", "lookup_did", key=did))["rows"]
    if not rows:
        raise RuntimeError(f"lookup_did has no row for {did}")


async def measure(work_dir: Path, dids: int) -> tuple[str, list[str]]:
    async with (
        couchdb(work_dir) as (couch_url, _couch_pid, kind),
        service(couch_url, work_dir, max_dids=str(dids)) as (url, _pid),
        CouchClient(couch_url) as couch,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session,
    ):
        store = AccountStore(couch)
        big_doc = (await store.create("Big trunk", None, None)).doc
        small_doc = (await store.create("Small trunks", None, None)).doc
        big = Api(session, url, big_doc["_id"], await login(session, url, big_doc["pvt_api_key"]))
        small = Api(
            session, url, small_doc["_id"], await login(session, url, small_doc["pvt_api_key"])
        )
        small_id = str((await small.send("PUT", "", trunk("small", SMALL_DOC_FIRST, 2), 201))["id"])
        traffic = SmallTraffic(small, small_id)
        clients = [asyncio.create_task(traffic.client(n)) for n in range(SMALL_CLIENTS)]
        await asyncio.sleep(1.0)
        lines: list[str] = []
        try:
            await timed(lines, "idle (1 s)", traffic, lambda: asyncio.sleep(1.0))
            body = trunk("big", BIG_FIRST, dids)
            created = await timed(lines, "PUT", traffic, lambda: big.send("PUT", "", body, 201))
            if created is None:
                raise RuntimeError("the big PUT failed: nothing more to measure")
            doc_id = str(created["id"])  # type: ignore[index]
            db = account_db(big.account_id)
            await timed(
                lines,
                "lookup_did indexed (CouchDB)",
                traffic,
                lambda: first_lookup(couch_url, db, f"+1{BIG_FIRST}"),
            )
            read = await timed(lines, "GET", traffic, lambda: big.send("GET", f"/{doc_id}"))
            got = len(read["servers"][0]["DIDs"])  # type: ignore[index]
            if got != dids:
                raise RuntimeError(f"GET answered {got} DIDs of {dids}")
            # A hundred DIDs replaced: the write's checks see 100 added and 100 removed.
            replaced = trunk("big", BIG_FIRST + 100, dids)
            await timed(lines, "POST", traffic, lambda: big.send("POST", f"/{doc_id}", replaced))
            await timed(
                lines,
                "PATCH",
                traffic,
                lambda: big.send("PATCH", f"/{doc_id}", {"name": "big, patched"}),
            )
            await timed(lines, "list the account (503s retried)", traffic, lambda: listed(big))
        finally:
            traffic.stop.set()
            await asyncio.gather(*clients)
        return kind, lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.big_trunk")
    parser.add_argument("--dids", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="a folder that keeps the service's log")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        kind, lines = asyncio.run(measure(args.keep, args.dids))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-big-trunk-") as work:
            kind, lines = asyncio.run(measure(Path(work), args.dids))
    print(f"{args.dids:,} DIDs in one trunk, {kind}; small requests from {SMALL_CLIENTS} clients")
    print("| big operation | small requests meanwhile | p50 | p99 | max | failed |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
