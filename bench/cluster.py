"""Several service instances over a CouchDB cluster behind a load balancer, a node lost.

    python -m bench.cluster --couch-url URL --instances N --minutes M \
        [--kill-cmd CMD --restart-cmd CMD] [--verify-url NODE_URL ...]
    python -m bench.cluster --couch-url URL --accounts-memory K

    make bench-cluster CLUSTER_URL=URL INSTANCES=N MINUTES=M KILL_CMD=... RESTART_CMD=...

The first form starts N `python -m service serve` on the cluster's balancer URL, creates
accounts, and lets writers create, replace, patch and delete trunks through the
instances in turn for M minutes. Halfway it runs the kill command (a CouchDB node
SIGKILLed, say), keeps writing for `--down-seconds`, then runs the restart command.
Afterwards it reads every trunk straight from each `--verify-url` (each node, say) and
checks that every acknowledged write is there: at a revision at least the acknowledged
one, with the acknowledged content when it was the trunk's latest write; acknowledged
deletes deleted. It prints writes attempted, acknowledged, failed by status, lost
(must be 0), latencies and ops/s before, during and after the node loss, and each
instance's memory; it exits 1 if a write was lost.

The second form measures one instance's memory: idle, then after one GET in each of
1,000 and K accounts (the per-account caches, service/cache/), and once the caches'
time limits have passed.

Everything it created in CouchDB is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from service.couchdb.client import CouchClient
from service.stores.accounts import AccountStore

from . import procstat
from .cluster_writes import Instances, NodeReader, Verdict, Write, Writer, run_writer, verify
from .data import AccountRef
from .ledger import Ledger, bounded
from .setup import account_ref
from .stack import service

T = TypeVar("T")
_started = time.monotonic()
# Seconds the caches may keep an idle account's entries: the account cache's default
# (CONNECTIVITY_ACCOUNT_CACHE_SECONDS, 5) and the read cache's minute before a database's
# slot may be taken by another, with some margin.
CACHE_SETTLE_SECONDS = 70
# Seconds a new account may take to be found by its api key (see account_with_token).
API_AUTH_PATIENCE = 10.0


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Timeline:
    """When the node was lost and back, to put each write in its phase."""

    start: float = 0.0
    killed: float | None = None
    restored: float | None = None  # the restart command returned: the node is up
    end: float = 0.0
    events: list[str] = field(default_factory=list)

    def phase(self, at: float) -> str:
        if self.killed is None or at < self.killed:
            return "before"
        if self.restored is None or at < self.restored:
            return "during"
        return "after"

    def seconds(self, phase: str) -> float:
        killed = self.killed or self.end
        restored = self.restored or self.end
        bounds = {"before": (self.start, killed), "during": (killed, restored)}
        low, high = bounds.get(phase, (restored, self.end))
        return max(high - low, 1e-9)

    def note(self, message: str) -> None:
        self.events.append(f"{time.monotonic() - self.start:6.1f}s  {message}")
        progress(message)


async def run_command(command: str, timeline: Timeline) -> None:
    proc = await asyncio.create_subprocess_shell(
        command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    last = out.decode(errors="replace").strip().splitlines()[-1:] or [""]
    timeline.note(f"`{command}` exited {proc.returncode}: {last[0]}")


async def node_loss(
    kill: str | None, restart: str | None, at: float, down: float, timeline: Timeline
) -> None:
    if kill is None:
        return
    await asyncio.sleep(max(at - time.monotonic(), 0))
    timeline.killed = time.monotonic()
    await run_command(kill, timeline)
    if restart is None:
        return
    await asyncio.sleep(max(timeline.killed + down - time.monotonic(), 0))
    await run_command(restart, timeline)
    timeline.restored = time.monotonic()


# -- the write run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    couch_url: str
    instances: int
    minutes: float
    writers: int
    accounts: int
    kill_cmd: str | None
    restart_cmd: str | None
    down_seconds: float
    verify_urls: list[str]


async def write_run(opts: Options, work_dir: Path) -> int:
    async with contextlib.AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(service(opts.couch_url, work_dir, f"instance{n}"))
            for n in range(opts.instances)
        ]
        progress(f"{opts.instances} instances up: {', '.join(url for url, _ in started)}")
        couch = await stack.enter_async_context(CouchClient(opts.couch_url))
        session = await stack.enter_async_context(aiohttp.ClientSession())
        ledger = Ledger()
        try:
            writers, refusals = await _writers(couch, session, started[0][0], opts, ledger)
            timeline = await _write(session, writers, Instances([u for u, _ in started]), opts)
            heartbeats = [await _heartbeat(session, url) for url, _ in started]
            memory = [(procstat.rss_mb(pid), procstat.peak_rss_mb(pid)) for _, pid in started]
            verdicts = []
            for url in opts.verify_urls:
                progress(f"verifying through {_without_credentials(url)}")
                verdicts.append((url, await verify(NodeReader(session, url), writers)))
        finally:
            progress("removing the accounts")
            await ledger.remove_all(couch)
        logs = [fault_lines(work_dir / f"instance{n}.log") for n in range(opts.instances)]
    print_write_report(opts, writers, timeline, verdicts, memory, heartbeats)
    for n, lines in enumerate(logs):
        for line in lines:
            print(f"instance{n} log: {line}")
    if refusals:
        print(f"(set-up: PUT /v2/api_auth answered 404 {refusals}x before a new account showed)")
    return 1 if any(v.lost for _, v in verdicts) else 0


async def _writers(
    couch: CouchClient, session: aiohttp.ClientSession, url: str, opts: Options, ledger: Ledger
) -> tuple[list[Writer], int]:
    """The writers, and how many `api_auth` answers were 404 before the account showed."""
    store = AccountStore(couch)
    accounts, refusals = [], 0
    for n in range(opts.accounts):
        ref, token, refused = await account_with_token(store, session, url, ledger, f"Cluster {n}")
        accounts.append((ref, token))
        refusals += refused
    writers = [
        Writer(n, *accounts[n % len(accounts)], rng=random.Random(n)) for n in range(opts.writers)
    ]
    return writers, refusals


async def account_with_token(
    store: AccountStore, session: aiohttp.ClientSession, url: str, ledger: Ledger, name: str
) -> tuple[AccountRef, str, int]:
    """An account as `create-account` makes it and a token from `PUT /v2/api_auth`, asked
    again while it answers 404: on a cluster the api-key view is read from one copy of
    each shard, which may not have the account yet (the write needed two of three)."""
    doc = (await store.create(name, None, None)).doc
    ref = ledger.add(account_ref(doc))
    body = {"data": {"api_key": doc["pvt_api_key"]}}
    deadline = time.monotonic() + API_AUTH_PATIENCE
    for refused in itertools.count():
        async with session.put(f"{url}/v2/api_auth", json=body) as resp:
            answer = await resp.json()
            if resp.status == 201:
                return ref, str(answer["auth_token"]), refused
            if resp.status != 404 or time.monotonic() > deadline:
                raise RuntimeError(f"PUT /v2/api_auth: {resp.status} {answer}")
        await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def _write(
    session: aiohttp.ClientSession, writers: list[Writer], instances: Instances, opts: Options
) -> Timeline:
    timeline = Timeline(start=time.monotonic())
    until = timeline.start + opts.minutes * 60
    progress(f"{len(writers)} writers for {opts.minutes:g} min")
    loss = node_loss(
        opts.kill_cmd,
        opts.restart_cmd,
        timeline.start + opts.minutes * 30,
        opts.down_seconds,
        timeline,
    )
    await asyncio.gather(loss, *(run_writer(session, w, instances, until) for w in writers))
    timeline.end = time.monotonic()
    return timeline


async def _heartbeat(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/__heartbeat__") as resp:
        return resp.status


def _without_credentials(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def fault_lines(log: Path, most: int = 12) -> list[str]:
    """The instance's warnings and errors (CouchDB faults, lost feeds), the first few."""
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if '"level":"warning"' in line or '"level":"error"' in line
    ]
    return lines[:most] + ([f"... {len(lines) - most} more"] if len(lines) > most else [])


# -- the report --------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)] * 1000


def print_write_report(
    opts: Options,
    writers: list[Writer],
    timeline: Timeline,
    verdicts: list[tuple[str, Verdict]],
    memory: list[tuple[float, float]],
    heartbeats: list[int],
) -> None:
    writes = [w for writer in writers for trunk in writer.trunks for w in trunk.writes]
    statuses = Counter(w.outcome for w in writes)
    by_phase: dict[str, list[Write]] = {"before": [], "during": [], "after": []}
    for write in writes:
        # By when the answer came: a write in flight when the node died fails with it.
        by_phase[timeline.phase(write.started + write.seconds)].append(write)
    acked = sum(w.acknowledged for w in writes)
    print(
        f"\ncluster bench: {opts.instances} instances, {opts.writers} writers over "
        f"{opts.accounts} accounts, {(timeline.end - timeline.start) / 60:.1f} min"
    )
    for event in timeline.events:
        print(f"  {event}")
    print(
        f"writes attempted {len(writes):,}, acknowledged {acked:,}, failed {len(writes) - acked:,}"
    )
    print("  by status: " + ", ".join(f"{s} {n:,}" for s, n in sorted(statuses.items())))
    print(
        "  by verb: "
        + ", ".join(
            f"{verb} {sum(1 for w in writes if w.verb == verb):,}"
            for verb in ("PUT", "POST", "PATCH", "DELETE")
        )
    )
    print(
        f"{'phase':<8}{'seconds':>9}{'writes':>9}{'ops/s':>8}{'failed':>8}"
        f"{'p50 ms':>9}{'p99 ms':>9}  failures"
    )
    for phase, items in by_phase.items():
        seconds = timeline.seconds(phase)
        done = [w.seconds for w in items if w.acknowledged]
        p50, p99 = _percentile(done, 0.5), _percentile(done, 0.99)
        failed = Counter(w.outcome for w in items if not w.acknowledged)
        print(
            f"{phase:<8}{seconds:>9.1f}{len(items):>9,}{len(items) / seconds:>8.0f}"
            f"{sum(failed.values()):>8,}{p50:>9.1f}{p99:>9.1f}"
            f"  {dict(failed) or ''}"
        )
    _print_recovery(writes, timeline)
    for url, verdict in verdicts:
        print(
            f"verified through {_without_credentials(url)}: lost {len(verdict.lost)}; "
            + ", ".join(f"{k} {n:,}" for k, n in verdict.checked.items())
        )
        for line in verdict.lost[:20] + verdict.odd[:20]:
            print(f"    {line}")
    for n, ((rss, peak), beat) in enumerate(zip(memory, heartbeats, strict=True)):
        print(f"instance{n}: RSS {rss:.0f} MB (peak {peak:.0f} MB), /__heartbeat__ {beat}")


def _print_recovery(writes: list[Write], timeline: Timeline) -> None:
    """When the last failure after the node came back happened: the service recovered by
    itself if failures stop soon after the restart."""
    if timeline.restored is None:
        return
    late = [w for w in writes if not w.acknowledged and w.started + w.seconds >= timeline.restored]
    if not late:
        print("after the restart: no failed write")
        return
    last = max(w.started + w.seconds for w in late) - timeline.restored
    print(f"after the restart: {len(late)} failed writes, the last {last:.1f}s after it returned")


# -- memory per account ------------------------------------------------------------------


async def accounts_memory(couch_url: str, count: int, work_dir: Path) -> None:
    # A quarter and a half of the way too: the slope between them tells whether the
    # per-account caches have reached their bounds.
    checkpoints = sorted({count // 4, count // 2, min(1000, count), count} - {0})
    async with (
        CouchClient(couch_url) as couch,
        aiohttp.ClientSession() as session,
        service(couch_url, work_dir, "memory") as (url, pid),
    ):
        ledger = Ledger()
        try:
            await asyncio.sleep(2)
            rows = [("idle after start", procstat.rss_mb(pid))]
            store = AccountStore(couch)
            master, token, _ = await account_with_token(store, session, url, ledger, "Memory")
            progress(f"creating {count:,} accounts under {master.id}")
            accounts = await _sub_accounts(store, ledger, master.id, count)
            touched = 0
            for checkpoint in checkpoints:
                progress(f"one GET in each of accounts {touched:,}..{checkpoint:,}")
                await _touch(session, url, token, accounts[touched:checkpoint])
                touched = checkpoint
                rows.append((f"after one GET in {checkpoint:,} accounts", procstat.rss_mb(pid)))
            progress(f"waiting {CACHE_SETTLE_SECONDS}s for the caches' time limits")
            await asyncio.sleep(CACHE_SETTLE_SECONDS)
            rows.append((f"{CACHE_SETTLE_SECONDS}s later, idle", procstat.rss_mb(pid)))
            rows.append(("peak (VmHWM)", procstat.peak_rss_mb(pid)))
        finally:
            progress("removing the accounts")
            await ledger.remove_all(couch)
    print(f"\none service instance, {count:,} accounts touched once each (GET of the listing)")
    for label, mb in rows:
        print(f"  {label:<34}{mb:8.1f} MB")
    half, whole = rows[checkpoints.index(count // 2) + 1][1], rows[len(checkpoints)][1]
    per_thousand = (whole - rows[0][1]) / count * 1000
    print(f"  growth per 1,000 accounts touched {per_thousand:8.1f} MB (from idle)")
    if count // 2:
        second_half = (whole - half) / (count - count // 2) * 1000
        print(f"  the same over the second half     {second_half:8.1f} MB")


async def _sub_accounts(store: AccountStore, ledger: Ledger, parent: str, count: int) -> list[str]:
    ids: list[str] = []

    async def create(n: int) -> None:
        created = await store.create(f"Memory {n}", None, parent)
        ledger.add(account_ref(created.doc))
        ids.append(created.doc["_id"])
        if len(ids) % 500 == 0:
            progress(f"  {len(ids):,} accounts")

    await bounded(list(range(count)), create, at_once=16)
    return ids


async def _touch(
    session: aiohttp.ClientSession, url: str, token: str, account_ids: list[str]
) -> None:
    headers = {"X-Auth-Token": token}

    async def touch(account_id: str) -> None:
        path = f"/v2/accounts/{account_id}/connectivity"
        async with session.get(url + path, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status}")

    await bounded(account_ids, touch, at_once=8)


# -- command line ------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--couch-url", required=True, help="the balancer, with admin credentials")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--accounts", type=int, default=4)
    parser.add_argument("--kill-cmd", help="run halfway: a CouchDB node lost")
    parser.add_argument("--restart-cmd", help="run --down-seconds after the kill command")
    parser.add_argument("--down-seconds", type=float, default=30.0)
    parser.add_argument(
        "--verify-url",
        action="append",
        dest="verify_urls",
        help="read every trunk back from here (repeat: each node); default the balancer",
    )
    parser.add_argument(
        "--accounts-memory",
        type=int,
        metavar="K",
        help="instead: one instance's memory after one GET in each of K accounts",
    )
    return parser.parse_args(argv)


async def _until_terminated(work: Coroutine[Any, Any, T]) -> T:
    """`work`, cancelled by SIGTERM or SIGINT so that its clean-up still runs: a bench
    started in the background (`&`) has SIGINT ignored, and SIGTERM's default would leave
    the accounts behind in a CouchDB the bench does not own."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await task


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        if args.accounts_memory:
            asyncio.run(
                _until_terminated(accounts_memory(args.couch_url, args.accounts_memory, Path(tmp)))
            )
            return 0
        opts = Options(
            couch_url=args.couch_url,
            instances=args.instances,
            minutes=args.minutes,
            writers=args.writers,
            accounts=args.accounts,
            kill_cmd=args.kill_cmd,
            restart_cmd=args.restart_cmd,
            down_seconds=args.down_seconds,
            verify_urls=args.verify_urls or [args.couch_url],
        )
        return asyncio.run(_until_terminated(write_run(opts, Path(tmp))))


if __name__ == "__main__":
    sys.exit(main())
