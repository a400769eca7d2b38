"""Soak test: N minutes of mixed traffic, the embedded CouchDB killed in the middle.

    make soak MINUTES=2        (or: .venv/bin/python -m bench.soak --minutes 2)

Starts `python -m service serve` on a temporary data folder (the embedded server on
leveldb, as `make run`), creates accounts, and lets several clients create, read,
replace, patch, list and delete connectivity documents while, halfway through, the
embedded CouchDB is killed with SIGKILL (the service restarts it). Each client owns its
documents, so it knows every write it sent and which ones were acknowledged; all
clients also patch one shared document. At the end it checks, against the service:

* every acknowledged write is readable: a document shows its last acknowledged write,
  or a later write whose answer was lost (503 or a cut connection), complete;
* nothing unacknowledged is half there: every document read back equals, field for
  field, one whole write that was sent;
* no acknowledged patch of the shared document is missing (no lost update).

Prints requests sent, answers by status, latencies, the restart, and the checks; exits
non-zero if a check fails or any answer was a 500.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from service.couchdb.client import CouchClient
from service.couchdb.runtime import with_credentials
from service.stores.accounts import AccountStore

ROOT = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT = 15.0
Json = dict[str, Any]

# Share of each operation in a client's traffic.
MIX = {"create": 12, "get": 25, "post": 15, "patch": 18, "list": 10, "delete": 5, "hot": 15}


# -- the service process ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {
            **os.environ,
            "CONNECTIVITY_DATA_DIR": str(self.data_dir),
            "CONNECTIVITY_PORT": str(self.port),
            "CONNECTIVITY_COUCH_URL": "",
            "CONNECTIVITY_COUCH_TIMEOUT": "5",
            # Mixed traffic from one address far above 10 requests a second: no 429s.
            "CONNECTIVITY_RATE_LIMIT_COST": "0",
        }
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", "serve", cwd=ROOT, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read_log())
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/__heartbeat__") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise RuntimeError("the service did not start:\n" + "\n".join(self.log[-20:]))

    async def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode("utf-8", "replace").rstrip())

    def couch_pid(self) -> int:
        assert self.process is not None
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if (
                    int(stat[1]) == self.process.pid
                    and b"server.js" in (entry / "cmdline").read_bytes()
                ):
                    return int(entry.name)
        raise LookupError("no embedded CouchDB under the service")

    def couch_url(self) -> str:
        admin = json.loads((self.data_dir / "couch-admin.json").read_text())
        url = json.loads((self.data_dir / "embedded-couch.json").read_text())["url"]
        return with_credentials(url, admin["user"], admin["password"])

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 30)
        if self._reader is not None:
            await self._reader
        return code


# -- what the clients know ---------------------------------------------------------------


@dataclass
class Write:
    """One write a client sent: the whole public content it should leave behind."""

    tag: str
    content: Json | None  # None: a delete
    acked: bool | None = None  # None while in flight; False: unknown outcome (5xx, cut)


@dataclass
class Doc:
    id: str
    did: str  # each document routes a number of its own (DIDs are unique per account)
    writes: list[Write] = field(default_factory=list)

    def last_acked(self) -> int | None:
        for index in range(len(self.writes) - 1, -1, -1):
            if self.writes[index].acked:
                return index
        return None

    def current_content(self) -> Json | None:
        """What the client believes is stored: its last acknowledged write."""
        index = self.last_acked()
        return None if index is None else self.writes[index].content

    def candidates(self) -> list[Write]:
        """The writes the stored doc may show: the last acknowledged one and every write
        after it whose answer never came (those may or may not have landed)."""
        start = self.last_acked()
        later = self.writes[(start or 0) + (1 if start is not None else 0) :]
        base = [self.writes[start]] if start is not None else []
        return base + [w for w in later if w.acked is False]


@dataclass
class Stats:
    statuses: Counter[str] = field(default_factory=Counter)
    errors_by_op: Counter[tuple[str, int]] = field(default_factory=Counter)
    by_op: Counter[str] = field(default_factory=Counter)
    client_errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    hot_acked: set[str] = field(default_factory=set)
    hot_unknown: set[str] = field(default_factory=set)


class Client:
    def __init__(
        self, number: int, service: Service, account: Json, token: str, hot_id: str, stats: Stats
    ) -> None:
        self.number = number
        self.service = service
        self.base = f"{service.url}/v2/accounts/{account['account_id']}/connectivity"
        self.headers = {"X-Auth-Token": token}
        self.hot_id = hot_id
        self.stats = stats
        self.docs: list[Doc] = []
        self.rng = random.Random(number)
        self.sequence = 0

    def _tag(self) -> str:
        self.sequence += 1
        return f"c{self.number}-{self.sequence}"

    async def send(
        self, session: aiohttp.ClientSession, op: str, method: str, url: str, body: Any = None
    ) -> tuple[int | None, Any]:
        started = time.monotonic()
        try:
            async with session.request(
                method, url, json=None if body is None else {"data": body}, headers=self.headers
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.client_errors[type(exc).__name__] += 1
            self.stats.by_op[op] += 1
            return None, None
        self.stats.latencies.append(time.monotonic() - started)
        self.stats.statuses[str(status)] += 1
        if status >= 400:
            self.stats.errors_by_op[(op, status)] += 1
        self.stats.by_op[op] += 1
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    async def run(self, session: aiohttp.ClientSession, until: float) -> None:
        ops, weights = list(MIX), list(MIX.values())
        while time.monotonic() < until:
            op = self.rng.choices(ops, weights)[0]
            live = [d for d in self.docs if d.current_content() is not None]
            if op in ("get", "post", "patch", "delete") and not live:
                op = "create"
            await getattr(self, f"_{op}")(session, self.rng.choice(live) if live else None)

    def _content(self, doc: Doc, tag: str) -> Json:
        return {
            "name": f"soak {doc.id[:8]} {tag}",
            "soak_write": tag,
            "custom": {"n": self.sequence, "text": "שלום 📞"},
            "servers": [
                {
                    "server_name": "PBX",
                    "auth": {"auth_user": f"u{doc.id[:6]}", "auth_password": f"pw-{doc.id}"},
                    "DIDs": {doc.did: {}},
                }
            ],
        }

    async def _record(
        self, session, op: str, doc: Doc, write: Write, method: str, url: str, body: Any
    ) -> None:
        doc.writes.append(write)
        status, _ = await self.send(session, op, method, url, body)
        if status is not None and 200 <= status < 300:
            write.acked = True
        elif status is None or status >= 500:
            write.acked = False  # the outcome is unknown
        else:
            doc.writes.remove(write)  # refused (4xx): it never happened

    async def _create(self, session, _doc) -> None:
        index = len(self.docs)
        doc = Doc(
            id=f"soak{self.number:02d}{index:06d}{self.rng.getrandbits(32):08x}",
            did=f"+1{200 + self.number:03d}{index:07d}",
        )
        self.docs.append(doc)
        tag = self._tag()
        content = self._content(doc, tag)
        body = {**content, "id": doc.id}
        await self._record(session, "create", doc, Write(tag, content), "PUT", self.base, body)

    async def _get(self, session, doc: Doc) -> None:
        await self.send(session, "get", "GET", f"{self.base}/{doc.id}")

    async def _list(self, session, _doc) -> None:
        await self.send(session, "list", "GET", f"{self.base}?page_size=20")

    async def _post(self, session, doc: Doc) -> None:
        tag = self._tag()
        content = self._content(doc, tag)
        await self._record(
            session, "post", doc, Write(tag, content), "POST", f"{self.base}/{doc.id}", content
        )

    async def _patch(self, session, doc: Doc) -> None:
        tag = self._tag()
        current = doc.current_content()
        assert current is not None
        patch = {"soak_write": tag, "custom": {"n": self.sequence}}
        content = copy.deepcopy(current)
        content["soak_write"] = tag
        content["custom"]["n"] = self.sequence
        await self._record(
            session, "patch", doc, Write(tag, content), "PATCH", f"{self.base}/{doc.id}", patch
        )

    async def _delete(self, session, doc: Doc) -> None:
        await self._record(
            session,
            "delete",
            doc,
            Write(self._tag(), None),
            "DELETE",
            f"{self.base}/{doc.id}",
            None,
        )

    async def _hot(self, session, _doc) -> None:
        key = f"hot_{self._tag().replace('-', '_')}"
        status, _ = await self.send(
            session, "hot", "PATCH", f"{self.base}/{self.hot_id}", {key: True}
        )
        if status is not None and 200 <= status < 300:
            self.stats.hot_acked.add(key)
        elif status is None or status >= 500:
            self.stats.hot_unknown.add(key)


# -- the run ---------------------------------------------------------------------------


async def _account(service: Service, session: aiohttp.ClientSession) -> tuple[Json, str]:
    async with CouchClient(service.couch_url()) as couch:
        account = (await AccountStore(couch).create("Soak", None, None)).summary
    async with session.put(
        f"{service.url}/v2/api_auth", json={"data": {"api_key": account["api_key"]}}
    ) as resp:
        token = (await resp.json())["auth_token"]
    return account, token


async def _kill_couch_midway(service: Service, at: float, events: list[str]) -> None:
    await asyncio.sleep(max(at - time.monotonic(), 0))
    pid = service.couch_pid()
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    events.append(f"embedded CouchDB (pid {pid}) killed with SIGKILL at {killed - START:.1f}s")
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{service.url}/__heartbeat__") as resp:
                    if resp.status == 200:
                        break
            await asyncio.sleep(0.02)
    events.append(
        f"service answered again {time.monotonic() - killed:.2f}s later "
        f"(new CouchDB pid {service.couch_pid()})"
    )


async def _read(session, client: Client, doc_id: str) -> tuple[int, Json | None]:
    for _ in range(100):
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"{client.base}/{doc_id}", headers=client.headers) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 503:
                    return resp.status, body
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{doc_id} could not be read")


def _public(data: Json) -> Json:
    """The fields a soak write controls, as the service answers them."""
    servers = [
        {k: v for k, v in server.items() if k in ("server_name", "auth", "DIDs")}
        for server in data.get("servers", [])
    ]
    for server in servers:
        server["auth"] = {
            k: v for k, v in server["auth"].items() if k in ("auth_user", "auth_password")
        }
        server["DIDs"] = {did: {} for did in server.get("DIDs", {})}
    return {
        "name": data.get("name"),
        "soak_write": data.get("soak_write"),
        "custom": data.get("custom"),
        "servers": servers,
    }


async def check(clients: list[Client], session: aiohttp.ClientSession) -> Json:
    result: Counter[str] = Counter()
    problems: list[str] = []
    for client in clients:
        for doc in client.docs:
            if not doc.writes:
                continue
            status, body = await _read(session, client, doc.id)
            shown = _public(body["data"]) if status == 200 and body else None
            candidates = doc.candidates()
            last = doc.last_acked()
            matching = [
                w for w in candidates if (w.content is None and shown is None)
                or (w.content is not None and shown == _public(w.content))
            ]  # fmt: skip
            never_acked_create = last is None and shown is None
            result["writes acknowledged"] += sum(1 for w in doc.writes if w.acked)
            if matching or never_acked_create:
                result["documents consistent"] += 1
                if last is not None:
                    result["acknowledged writes readable"] += 1
                if matching and matching[-1].acked is False:
                    result["unacknowledged writes that landed (whole)"] += 1
            else:
                seen = shown and shown["soak_write"]
                expected = [w.tag for w in candidates]
                problems.append(f"{doc.id}: shows {seen!r}, expected one of {expected}")
    hot_status, hot = await _read(session, clients[0], clients[0].hot_id)
    hot_keys = {k for k in (hot or {}).get("data", {}) if k.startswith("hot_")}
    stats = clients[0].stats
    lost = stats.hot_acked - hot_keys
    unexplained = hot_keys - stats.hot_acked - stats.hot_unknown
    result["shared doc: acknowledged patches"] = len(stats.hot_acked)
    result["shared doc: lost updates"] = len(lost)
    result["shared doc: unacknowledged patches that landed"] = len(hot_keys & stats.hot_unknown)
    if lost or unexplained or hot_status != 200:
        problems.append(
            f"shared doc: lost {sorted(lost)[:5]}, unexplained {sorted(unexplained)[:5]}"
        )
    return {"counts": dict(result), "problems": problems}


START = time.monotonic()


async def soak(minutes: float, clients_count: int) -> int:
    global START
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        service = Service(Path(tmp))
        await service.start()
        events: list[str] = []
        stats = Stats()
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                account, token = await _account(service, session)
                async with session.put(
                    f"{service.url}/v2/accounts/{account['account_id']}/connectivity",
                    json={"data": {"name": "shared"}},
                    headers={"X-Auth-Token": token},
                ) as resp:
                    hot_id = (await resp.json())["data"]["id"]
                clients = [
                    Client(n, service, account, token, hot_id, stats) for n in range(clients_count)
                ]
                START = time.monotonic()
                until = START + minutes * 60
                killer = asyncio.create_task(
                    _kill_couch_midway(service, START + minutes * 30, events)
                )
                await asyncio.gather(*(c.run(session, until) for c in clients))
                elapsed = time.monotonic() - START
                await killer
                outcome = await check(clients, session)
        finally:
            code = await service.stop()
        return report(minutes, clients_count, elapsed, stats, events, outcome, service, code)


def report(minutes, clients_count, elapsed, stats: Stats, events, outcome, service, code) -> int:
    sent = sum(stats.statuses.values()) + sum(stats.client_errors.values())
    latencies = sorted(stats.latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    print(f"soak: {minutes:g} min, {clients_count} clients, {elapsed:.0f}s of traffic")
    print(f"requests sent: {sent} ({sent / elapsed:.0f}/s)")
    print("  by operation: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.by_op.items())))
    print(
        "  answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses.items()))
    )
    errors = {k: v for k, v in stats.statuses.items() if not k.startswith("2")}
    print(
        "  errors by status: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none")
    )
    by_op = ", ".join(
        f"{op} {status}: {n}" for (op, status), n in sorted(stats.errors_by_op.items())
    )
    print("  errors by operation: " + (by_op or "none"))
    print(
        "  client-side errors: "
        + (", ".join(f"{k}: {v}" for k, v in stats.client_errors.items()) or "none")
    )
    if latencies:
        mean = statistics.mean(latencies) * 1000
        print(
            f"  latency ms: p50 {pct(0.5):.1f}, p95 {pct(0.95):.1f}, p99 {pct(0.99):.1f}, "
            f"max {latencies[-1] * 1000:.0f}, mean {mean:.1f}"
        )
    for event in events:
        print("  " + event)
    lines = [json.loads(line) for line in service.log if line.startswith("{")]
    restarts = sum(1 for r in lines if r.get("message") == "embedded couchdb restarted")
    print(
        f"  embedded CouchDB restarts logged by the service: {restarts}; service exit code {code}"
    )
    print("consistency check:")
    for name, value in outcome["counts"].items():
        print(f"  {name}: {value}")
    for problem in outcome["problems"][:20]:
        print(f"  PROBLEM {problem}")
    ok = not outcome["problems"] and "500" not in stats.statuses and code == 0
    print("result: " + ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    return asyncio.run(soak(args.minutes, args.clients))


if __name__ == "__main__":
    sys.exit(main())
