"""`python -m bench.amqp [--quick]` (`make bench-amqp`): what publishing change events adds
to a write.

Two services as `make run` starts them, on one embedded CouchDB: one with
CONNECTIVITY_AMQP_URL (the machine's RabbitMQ, or the one named by
CONNECTIVITY_BENCH_AMQP_URL), one without. The same writes go to both, interleaved A B
A B (bench/runner.py), and the table gives each side's median latency and the service's
CPU time per write; the difference is the cost of the events. A queue bound like
trunkstore's listener counts the events, so the table also says that none was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import aio_pika
import aiohttp

from service.couchdb.client import CouchClient
from service.kazoo.ids import new_id
from service.stores.accounts import AccountStore

from .runner import OpFn, Pair, Watched, run
from .setup import login
from .stack import couchdb, service

BROKER_URL = os.environ.get("CONNECTIVITY_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CONCURRENCIES = (1, 10)
WARMUP = 20
TRUNK = {"name": "Bench", "servers": []}


class Writer:
    """PUTs and PATCHes on one service, as one account."""

    def __init__(self, session: aiohttp.ClientSession, url: str, account_id: str, token: str):
        self.session, self.url, self.token = session, url, token
        self.base = f"{url}/v2/accounts/{account_id}/connectivity"

    async def send(self, method: str, path: str, data: object, expect: int) -> str:
        body = json.dumps({"data": data})
        headers = {"X-Auth-Token": self.token, "Content-Type": "application/json"}
        async with self.session.request(method, self.base + path, data=body, headers=headers) as r:
            text = await r.text()
            if r.status != expect:
                raise RuntimeError(f"{method} {path}: {r.status} {text[:200]}")
            return str(json.loads(text)["data"]["id"])

    async def put(self, _index: int = 0, _worker: int = 0) -> None:
        await self.send("PUT", "", TRUNK, 201)

    def patcher(self, doc_ids: list[str]):  # type: ignore[no-untyped-def]
        async def patch(index: int, worker: int) -> None:
            await self.send("PATCH", f"/{doc_ids[worker]}", {"name": f"B {index}"}, 200)

        return patch


async def alternate(
    name: str,
    on: OpFn,
    off: OpFn,
    concurrency: int,
    ops: int,
    repeats: int,
    watched: tuple[Watched, Watched],
) -> Pair:
    """`on` (events published) as the pair's api side, `off` as its raw side, A B A B;
    each side's CPU read from its own service process."""
    pair = Pair(name=name, concurrency=concurrency)
    await run(on, WARMUP, concurrency, watched[0])
    await run(off, WARMUP, concurrency, watched[1])
    for _ in range(repeats):
        pair.api.runs.append(await run(on, ops, concurrency, watched[0]))
        pair.raw.runs.append(await run(off, ops, concurrency, watched[1]))
    return pair


async def measure(work_dir: Path, quick: bool) -> list[Pair]:
    ops, repeats = (100, 3) if quick else (300, 5)
    async with (
        couchdb(work_dir) as (couch_url, couch_pid, _kind),
        service(couch_url, work_dir, "amqp", amqp_url=BROKER_URL) as (amqp_url, amqp_pid),
        service(couch_url, work_dir, "plain", amqp_url="") as (plain_url, plain_pid),
        CouchClient(couch_url) as couch,
        aiohttp.ClientSession() as session,
    ):
        account = (await AccountStore(couch).create("Bench", None, None)).doc
        events = await count_events(account["_id"])
        writers = []
        for url in (amqp_url, plain_url):
            token = await login(session, url, account["pvt_api_key"])
            writers.append(Writer(session, url, account["_id"], token))
        with_events, without = writers
        watched = (Watched(amqp_pid, couch_pid), Watched(plain_pid, couch_pid))
        results = []
        written = 0
        for concurrency in CONCURRENCIES:
            docs = [await with_events.send("PUT", "", TRUNK, 201) for _ in range(concurrency)]
            written += concurrency
            for name, on, off in (
                ("PUT (create)", with_events.put, without.put),
                ("PATCH (merge)", with_events.patcher(docs), without.patcher(docs)),
            ):
                print(f"{name} at concurrency {concurrency}", file=sys.stderr, flush=True)
                results.append(await alternate(name, on, off, concurrency, ops, repeats, watched))
                written += WARMUP + ops * repeats
        delivered = await events.until(written)
        print(f"events: {delivered} delivered for {written} writes with AMQP on")
        return results


class EventCount:
    def __init__(self, connection: aio_pika.abc.AbstractConnection, account_id: str) -> None:
        self.connection, self.account_id, self.count = connection, account_id, 0
        self.changed = asyncio.Event()

    async def on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if json.loads(message.body).get("Account-ID") == self.account_id:
            self.count += 1
            self.changed.set()

    async def until(self, expected: int, patience: float = 30.0) -> int:
        """The events counted once `expected` arrived, or once none came for `patience` s."""
        while self.count < expected:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), patience)
            except TimeoutError:
                break
        await self.connection.close()
        return self.count


async def count_events(account_id: str) -> EventCount:
    connection = await aio_pika.connect(BROKER_URL)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "configuration", aio_pika.ExchangeType.TOPIC, durable=False, auto_delete=False
    )
    queue = await channel.declare_queue(
        f"bench-{new_id()}", exclusive=True, auto_delete=True, durable=False
    )
    await queue.bind(exchange, "*.*.sys_info.*")
    counter = EventCount(connection, account_id)
    await queue.consume(counter.on_message, no_ack=True)
    return counter


def table(results: list[Pair]) -> str:
    lines = [
        "| write | concurrency | p50 without | p50 with | added p50 | service CPU/write "
        "without | with | added CPU/write |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair in results:
        off_cpu, on_cpu = pair.raw.service_cpu_ms_per_op, pair.api.service_cpu_ms_per_op
        lines.append(
            f"| {pair.name} | {pair.concurrency} | {pair.raw.p50_ms:.2f} ms "
            f"| {pair.api.p50_ms:.2f} ms | {pair.added_p50_ms:+.2f} ms | {off_cpu:.2f} ms "
            f"| {on_cpu:.2f} ms | {on_cpu - off_cpu:+.2f} ms |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.amqp")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-amqp-") as work:
        results = asyncio.run(measure(Path(work), args.quick))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
