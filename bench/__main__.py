"""`python -m bench [--quick]` (`make bench`, `make bench QUICK=1`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from service.couchdb.client import CouchClient
from service.stores.accounts import AccountStore

from . import plan as plans
from . import procstat, report
from .indexing import indexers_idle
from .ledger import Ledger
from .runner import Pair, Watched, interleaved
from .scaling import listing_at_sizes, many_accounts
from .setup import new_account, prepare
from .stack import Stack, running_stack, service
from .workloads import Client, Fixture, pairings, uncached_pairings
from .writes import (
    claims_writes,
    steps_table,
    write_steps,
    writes_at_sizes,
    writes_without_dids,
)

_started = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


async def main_table(
    clients: tuple[Client, Client],
    fx: Fixture,
    plan: plans.Plan,
    watched: tuple[Watched, Watched],
) -> list[Pair]:
    """`clients` and `watched`: the service as `make run` starts it, then the same with
    its read cache off (only the reads are measured there)."""
    (client, uncached), (watched_service, watched_uncached) = clients, watched
    pairs = []
    for concurrency in plans.CONCURRENCIES:
        measured = [(p, watched_service) for p in pairings(client, fx, concurrency)]
        measured += [(p, watched_uncached) for p in uncached_pairings(uncached, fx)]
        for pairing, watching in measured:
            runs = plan.runs[pairing.name]
            ops = runs.ops(concurrency)
            progress(f"{pairing.name} at concurrency {concurrency}: {runs.repeats} x {ops} ops")
            pairs.append(
                await interleaved(
                    pairing.name,
                    pairing.api,
                    pairing.raw,
                    ops=ops,
                    concurrency=concurrency,
                    repeats=runs.repeats,
                    watched=watching,
                    warmup=runs.warmup_ops(concurrency),
                )
            )
    return pairs


async def bench(plan: plans.Plan, work_dir: Path) -> list[str]:
    progress("starting CouchDB and the service")
    ledger = Ledger()
    async with (
        running_stack(work_dir) as stack,
        CouchClient(stack.couch_url, timeout=120) as couch,
        aiohttp.ClientSession() as session,
    ):
        client = Client(session, stack.service_url, stack.couch_url)
        uncached = Client(session, stack.uncached_url, stack.couch_url)
        try:
            return await measure(plan, stack, couch, (client, uncached), ledger, work_dir)
        finally:
            if stack.couch_pid is None:
                progress(f"removing the {len(ledger.accounts):,} accounts it created")
                await ledger.remove_all(couch)


async def measure(
    plan: plans.Plan,
    stack: Stack,
    couch: CouchClient,
    clients: tuple[Client, Client],
    ledger: Ledger,
    work_dir: Path,
) -> list[str]:
    client = clients[0]
    # Only Apache CouchDB indexes views in the background (bench/indexing.py).
    settle = indexers_idle(client) if stack.couch_pid is None else None
    watched = Watched(stack.service_pid, stack.couch_pid, settle)
    notes: dict[str, str] = {}
    progress(f"loading {plan.main_docs:,} docs")
    fx = await prepare(couch, client, ledger, plan, notes)
    pairs = await main_table(clients, fx, plan, (watched, watched.of(stack.uncached_pid)))
    peak_after_main = procstat.peak_rss_mb(stack.service_pid)
    write_sizes = await writes_at_sizes(couch, client, ledger, plan, watched, progress)
    progress("PUT of the same trunk without DIDs (nothing to check)")
    bare = await writes_without_dids(couch, client, ledger, plan, watched)
    progress("where a write's time goes")
    steps = await write_steps(
        client, *await new_account(AccountStore(couch), client, ledger, "Bench steps"), 20
    )
    progress("PUT with DID claims in CouchDB (several instances sharing it)")
    async with service(stack.couch_url, work_dir, "claims", did_claims="true") as (url, pid):
        claims = await claims_writes(
            couch,
            Client(client.session, url, stack.couch_url),
            ledger,
            plan,
            watched.of(pid),
        )
    sizes = await listing_at_sizes(couch, client, ledger, fx, plan, watched, progress)
    accounts = await many_accounts(couch, client, ledger, plan, watched, progress)
    peak = procstat.peak_rss_mb(stack.service_pid)
    return [
        f"kazoo-connectivity benchmark{' (QUICK)' if plan.quick else ''}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"CouchDB: {stack.couch_kind}",
        *(f"{key}: {value}" for key, value in notes.items()),
        "",
        f"Each API operation next to the raw CouchDB operation it wraps "
        f"({plan.main_docs:,} docs in the listed account)",
        *report.pair_table(pairs),
        *report.LEGEND,
        "",
        "Writes as the account grows",
        *report.writes_table(write_sizes),
        "",
        "The same trunk without DIDs: no DID check, ownership read or assignment (the",
        "floor of any design of the DID rules)",
        *report.pair_table([bare]),
        "",
        "Where a write's time goes",
        *steps_table(steps),
        "",
        "With DID claims in CouchDB (CONNECTIVITY_DID_CLAIMS=true, for instances sharing it)",
        *report.pair_table([claims]),
        "",
        "Listing as the account grows",
        *report.scaling_table(sizes),
        "",
        "Many accounts",
        *report.accounts_section(accounts),
        "",
        f"service memory: peak RSS {peak:.0f} MB ({peak_after_main:.0f} MB after the main table)",
        "",
        *report.indexing_section(
            [*pairs, *(row.put for row in write_sizes), bare, claims, accounts.spread_put]
        ),
        "Targets",
        *(v.line() for v in report.verdicts(pairs, peak, write_sizes, accounts)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter run (make bench QUICK=1)")
    args = parser.parse_args()
    # `kill` and `timeout` send SIGTERM: stop as Ctrl-C does, so that the service and the
    # CouchDB this run started are stopped with it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    plan = plans.quick() if args.quick else plans.full()
    try:
        with tempfile.TemporaryDirectory(prefix="connectivity-bench-") as tmp:
            lines = asyncio.run(bench(plan, Path(tmp)))
    except KeyboardInterrupt:
        progress("interrupted; the service and CouchDB it started are stopped")
        return 130
    progress("done")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
