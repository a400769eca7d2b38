"""The writers of `bench.cluster` and the check that no acknowledged write was lost.

Each writer owns its trunks, so it knows every write each one received and in which
order; its requests rotate over the service instances, so consecutive writes to one
trunk usually go through different instances (each with its own caches, kept exact by
CouchDB's changes feeds). A trunk is written until it is deleted (or a delete's answer
is lost), never after.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from service.couchdb.client import quote_db, quote_doc_id, split_credentials
from service.kazoo.documents import public_view

from .data import AccountRef
from .workloads import JSON_HEADERS, connectivity_path, encode

Json = dict[str, Any]

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# Share of each verb in a writer's traffic; a writer with no live trunk creates one.
MIX = {"PUT": 30, "POST": 25, "PATCH": 30, "DELETE": 15}
# One delete in this many is a hard delete (`should_soft_delete=false`): a CouchDB
# tombstone rather than KAZOO's `pvt_deleted` flag, so both kinds are checked.
HARD_DELETE_EVERY = 4


@dataclass
class Write:
    verb: str
    started: float  # monotonic
    seconds: float = 0.0
    status: int | None = None  # None: no answer (connection cut, timeout)
    revision: str | None = None  # what the answer's envelope said
    data: Json | None = None  # the answer's data: what the doc now shows
    hard: bool = False
    error: str = ""  # a refusal's KAZOO error, or the exception when there was no answer

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def outcome(self) -> str:
        return f"{self.status or 'no answer'} {self.error}".strip()

    @property
    def ambiguous(self) -> bool:
        """No answer or a 5xx: the write may or may not have landed."""
        return self.status is None or self.status >= 500


@dataclass
class Trunk:
    doc_id: str
    dids: list[str]
    writes: list[Write] = field(default_factory=list)
    retired: bool = False  # a delete was sent: no more writes


@dataclass
class Writer:
    number: int
    account: AccountRef
    token: str
    rng: random.Random
    trunks: list[Trunk] = field(default_factory=list)

    def live(self) -> list[Trunk]:
        return [t for t in self.trunks if not t.retired and any(w.acknowledged for w in t.writes)]

    def new_trunk(self) -> Trunk:
        index = len(self.trunks)
        # Ids and DIDs unique per writer: the service refuses a DID another trunk of the
        # account routes, and a client-chosen id lets a PUT whose answer was lost be found.
        trunk = Trunk(
            doc_id=f"cluster{self.number:03d}x{index:06d}x{self.rng.getrandbits(32):08x}",
            dids=[f"+1{200 + self.number:03d}{index:05d}{n}" for n in range(2)],
        )
        self.trunks.append(trunk)
        return trunk

    def body(self, trunk: Trunk, tag: str) -> Json:
        return {
            "name": f"cluster {trunk.doc_id[-8:]} {tag}",
            "cluster_write": tag,
            "servers": [
                {
                    "server_name": "PBX",
                    "auth": {"auth_method": "password", "auth_user": f"u{trunk.doc_id[-8:]}",
                             "auth_password": f"pw-{tag}"},
                    "DIDs": {did: {} for did in trunk.dids},
                }
            ],
        }  # fmt: skip


@dataclass
class Instances:
    """The service URLs, taken in turn by every request of every writer."""

    urls: list[str]
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def next(self) -> str:
        return self.urls[next(self._turn) % len(self.urls)]


async def run_writer(
    session: aiohttp.ClientSession, writer: Writer, instances: Instances, until: float
) -> None:
    verbs, weights = list(MIX), list(MIX.values())
    sequence = itertools.count()
    while time.monotonic() < until:
        verb = writer.rng.choices(verbs, weights)[0]
        live = writer.live()
        if verb != "PUT" and not live:
            verb = "PUT"
        trunk = writer.new_trunk() if verb == "PUT" else writer.rng.choice(live)
        tag = f"w{writer.number}-{next(sequence)}"
        await _send(session, writer, instances.next(), trunk, verb, tag)


async def _send(
    session: aiohttp.ClientSession, writer: Writer, base: str, trunk: Trunk, verb: str, tag: str
) -> None:
    path = connectivity_path(writer.account)
    body: Json | None = None
    write = Write(verb, time.monotonic())
    if verb == "PUT":
        body = {**writer.body(trunk, tag), "id": trunk.doc_id}
    else:
        path += "/" + trunk.doc_id
        if verb == "POST":
            body = writer.body(trunk, tag)
        elif verb == "PATCH":
            body = {"cluster_write": tag, "custom": {"patched": tag}}
        else:
            trunk.retired = True
            write.hard = writer.rng.randrange(HARD_DELETE_EVERY) == 0
            if write.hard:
                path += "?should_soft_delete=false"
    trunk.writes.append(write)
    headers = {**JSON_HEADERS, "X-Auth-Token": writer.token}
    data = None if body is None else encode({"data": body})
    try:
        async with session.request(
            verb, base + path, data=data, headers=headers, timeout=REQUEST_TIMEOUT
        ) as resp:
            raw = await resp.read()
            write.status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        write.error = type(exc).__name__
        write.seconds = time.monotonic() - write.started
        return
    write.seconds = time.monotonic() - write.started
    if write.acknowledged:
        answer = json.loads(raw)
        write.revision = answer.get("revision")
        write.data = answer.get("data")
    else:
        with contextlib.suppress(ValueError):
            write.error = str(json.loads(raw).get("message", ""))


# -- the check ---------------------------------------------------------------------------


def rev_number(revision: str) -> int:
    return int(revision.split("-", 1)[0])


@dataclass
class Verdict:
    checked: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)  # acknowledged writes not found
    odd: list[str] = field(default_factory=list)  # not a loss, but worth a look


class NodeReader:
    """Reads docs straight from one CouchDB node (or the balancer), as CouchDB stores them."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.base, authorization = split_credentials(url)
        self.headers = {"Accept": "application/json"}
        if authorization is not None:
            self.headers["Authorization"] = authorization

    async def doc(self, db: str, doc_id: str) -> tuple[int, Json]:
        url = f"{self.base}/{quote_db(db)}/{quote_doc_id(doc_id)}?conflicts=true"
        async with self.session.get(url, headers=self.headers) as resp:
            return resp.status, dict(await resp.json())


async def verify(reader: NodeReader, writers: list[Writer]) -> Verdict:
    verdict = Verdict()
    for writer in writers:
        for trunk in writer.trunks:
            await _verify_trunk(reader, writer.account, trunk, verdict)
    return verdict


async def _verify_trunk(reader: NodeReader, account: AccountRef, trunk: Trunk, v: Verdict) -> None:
    acked = [i for i, w in enumerate(trunk.writes) if w.acknowledged]
    if not acked:
        v.checked["trunks with no acknowledged write"] += 1
        return
    last = trunk.writes[acked[-1]]
    # Writes after the last acknowledged one that may have landed; 4xx refusals did not.
    later = [w for w in trunk.writes[acked[-1] + 1 :] if w.ambiguous]
    status, doc = await reader.doc(account.db, trunk.doc_id)
    v.checked["acknowledged writes"] += len(acked)
    name = f"{trunk.doc_id} ({last.verb} {last.revision})"
    if doc.get("_conflicts"):
        v.odd.append(f"{name}: conflicting revisions {doc['_conflicts']}")
    if last.verb == "DELETE":
        _check_delete(last, status, doc, name, v)
        return
    if status != 200:
        if later and later[-1].verb == "DELETE" and doc.get("reason") == "deleted":
            v.checked["acknowledged, then a delete whose answer was lost landed"] += 1
            return
        v.lost.append(f"{name}: HTTP {status} {doc}")
        return
    assert last.revision is not None
    if rev_number(doc["_rev"]) < rev_number(last.revision):
        v.lost.append(f"{name}: stored at {doc['_rev']}, older than acknowledged")
    elif later:
        # Content is only compared when the acknowledged write is the doc's latest.
        v.checked["acknowledged, a later write's answer lost (revision checked)"] += 1
    elif public_view(doc) != last.data:
        v.lost.append(f"{name}: stored {doc['_rev']} differs from the acknowledged content")
    elif doc["_rev"] != last.revision:
        v.odd.append(f"{name}: the content matches but the doc is at {doc['_rev']}")
    else:
        v.checked["latest write present, content equal"] += 1


def _check_delete(last: Write, status: int, doc: Json, name: str, v: Verdict) -> None:
    # A delete's answer carries the revision the doc had *before* it (KAZOO's rule).
    assert last.revision is not None
    if last.hard:
        if status == 404 and doc.get("reason") == "deleted":
            v.checked["hard delete present (tombstone)"] += 1
        else:
            v.lost.append(f"{name}: hard-deleted but HTTP {status} {doc.get('_rev')}")
    elif status == 200 and doc.get("pvt_deleted") is True:
        if rev_number(doc["_rev"]) > rev_number(last.revision):
            v.checked["soft delete present (pvt_deleted)"] += 1
        else:
            v.lost.append(f"{name}: pvt_deleted at {doc['_rev']}, not after the delete")
    else:
        v.lost.append(
            f"{name}: soft-deleted but HTTP {status} pvt_deleted={doc.get('pvt_deleted')}"
        )
