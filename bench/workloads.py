"""Each API operation beside the raw CouchDB operation(s) it wraps, over one client.

Both sides use the same aiohttp session (keep-alive, default connector), send bodies
encoded before the clock starts and read every answer to the end. A raw side that must
read before it writes (POST, PATCH, DELETE ↔ GET + PUT) decodes and re-encodes the doc,
as the service has to.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from service.couchdb.client import quote_db, quote_doc_id, split_credentials
from service.kazoo.ids import new_id, now_gregorian

from .data import AccountRef
from .runner import OpFn

Json = dict[str, Any]

# The view the service lists from, and KAZOO's, whose rows also carry {name, servers}.
# The view the service itself reads for a listing (KAZOO's own).
LISTING_VIEW = "_design/trunkstore/_view/crossbar_listing"
# Every API write looks its DIDs up here first (service/numbers/did_guard.py).
DID_VIEW = "_design/trunkstore/_view/lookup_did"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class UnexpectedAnswer(RuntimeError):
    """A request of the benchmark failed: its figures would mean nothing."""


@dataclass
class Client:
    session: aiohttp.ClientSession
    service_url: str
    couch_url: str  # with credentials
    couch_base: str = ""
    couch_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.couch_base, authorization = split_credentials(self.couch_url)
        self.couch_headers = dict(JSON_HEADERS)
        if authorization is not None:
            self.couch_headers["Authorization"] = authorization

    async def fetch(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        expect: int,
        body: bytes | None = None,
    ) -> bytes:
        async with self.session.request(method, url, data=body, headers=headers) as resp:
            raw = await resp.read()
            if resp.status != expect:
                raise UnexpectedAnswer(f"{method} {url}: {resp.status} {raw[-600:]!r}")
            return raw

    def api_headers(self, token: str) -> dict[str, str]:
        return {**JSON_HEADERS, "X-Auth-Token": token}

    async def api(
        self, method: str, path: str, token: str, expect: int, body: bytes | None = None
    ) -> bytes:
        return await self.fetch(
            method, self.service_url + path, self.api_headers(token), expect, body
        )

    def doc_url(self, db: str, doc_id: str) -> str:
        return f"{self.couch_base}/{quote_db(db)}/{quote_doc_id(doc_id)}"

    async def couch(self, method: str, url: str, expect: int, body: bytes | None = None) -> bytes:
        return await self.fetch(method, url, self.couch_headers, expect, body)

    async def couch_get_doc(self, db: str, doc_id: str) -> Json:
        return dict(json.loads(await self.couch("GET", self.doc_url(db, doc_id), 200)))

    async def couch_put_doc(self, db: str, doc: Json) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode()
        await self.couch("PUT", self.doc_url(db, doc["_id"]), 201, body)


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class Pool:
    """Ids handed out once each (docs an operation consumes, e.g. by deleting them)."""

    ids: list[str]
    cursor: int = 0

    def take(self) -> str:
        if self.cursor >= len(self.ids):
            raise UnexpectedAnswer("the benchmark ran out of prepared documents")
        doc_id = self.ids[self.cursor]
        self.cursor += 1
        return doc_id


@dataclass
class BodyPool:
    """Trunks with DIDs nobody uses yet, each handed out once: a DID may be in only one
    trunk of an account (service/numbers/did_guard.py), so every PUT and POST brings new ones —
    the raw side's POSTs too, or a later API PATCH of the same doc would find duplicates.
    """

    public_docs: list[Json]
    cursor: int = 0

    def take(self) -> Json:
        if self.cursor >= len(self.public_docs):
            raise UnexpectedAnswer("the benchmark ran out of prepared request bodies")
        doc = self.public_docs[self.cursor]
        self.cursor += 1
        return doc

    def take_encoded(self) -> bytes:
        return encode({"data": self.take()})


@dataclass
class Fixture:
    """What the operations work on; built by the set-up."""

    main: AccountRef  # the account with 10,000 docs: reads and listings
    main_ids: list[str]
    writes: AccountRef  # the account PUT, POST, PATCH and DELETE write to
    update_ids: list[str]  # POST/PATCH targets; a multiple of the highest concurrency
    delete_pool: Pool
    bodies: list[Json]  # public docs for the raw side of PUT
    fresh_bodies: BodyPool  # for the API's PUT and POST, and the raw side's POST
    tokens: dict[str, str]  # account id -> token


@dataclass(frozen=True)
class Pairing:
    name: str
    api: OpFn
    raw: OpFn


def connectivity_path(account: AccountRef, suffix: str = "") -> str:
    return f"/v2/accounts/{account.id}/connectivity{suffix}"


def floor(client: Client) -> Pairing:
    """The least any request through the service costs: its heartbeat asks CouchDB one
    question (`GET /_up`) through the same client, middlewares and access log as the API,
    without the pipeline (tokens, accounts, KAZOO's envelope)."""

    async def api(_index: int, _worker: int) -> None:
        await client.fetch("GET", client.service_url + "/__heartbeat__", {}, 200)

    async def raw(_index: int, _worker: int) -> None:
        await client.couch("GET", client.couch_base + "/_up", 200)

    return Pairing("floor: /__heartbeat__", api, raw)


def get_one(client: Client, fx: Fixture, name: str = "GET one doc") -> Pairing:
    def pick(index: int) -> str:
        return fx.main_ids[(index * 7919) % len(fx.main_ids)]

    async def api(index: int, _worker: int) -> None:
        path = connectivity_path(fx.main, "/" + pick(index))
        await client.api("GET", path, fx.tokens[fx.main.id], 200)

    async def raw(index: int, _worker: int) -> None:
        await client.couch("GET", client.doc_url(fx.main.db, pick(index)), 200)

    return Pairing(name, api, raw)


def put_new(client: Client, fx: Fixture) -> Pairing:
    # The raw side stores what the service would store; only the id differs per call.
    raw_bodies = [encode(stored_like(body, fx.writes)) for body in fx.bodies]

    async def api(_index: int, _worker: int) -> None:
        body = fx.fresh_bodies.take_encoded()
        await client.api("PUT", connectivity_path(fx.writes), fx.tokens[fx.writes.id], 201, body)

    async def raw(index: int, _worker: int) -> None:
        doc_id = new_id()
        body = b'{"_id":"' + doc_id.encode() + b'",' + raw_bodies[index % len(raw_bodies)][1:]
        await client.couch("PUT", client.doc_url(fx.writes.db, doc_id), 201, body)

    return Pairing("PUT (create)", api, raw)


def stored_like(public: Json, account: AccountRef) -> Json:
    now = now_gregorian()
    return {
        **public,
        "pvt_type": "sys_info",
        "pvt_vsn": "1",
        "pvt_account_id": account.id,
        "pvt_account_db": account.db.replace("/", "%2F"),
        "pvt_created": now,
        "pvt_modified": now,
        "pvt_request_id": new_id(),
        "pvt_is_authenticated": True,
        "pvt_auth_account_id": account.id,
    }


class _Rotation:
    """Per-worker rotation over `ids`: two workers never touch the same doc at once."""

    def __init__(self, ids: list[str], workers: int) -> None:
        if len(ids) % workers:
            raise ValueError("the update pool must be a multiple of the concurrency")
        self.ids, self.workers, self.turns = ids, workers, [0] * workers

    def next(self, worker: int) -> str:
        turn = self.turns[worker]
        self.turns[worker] += 1
        return self.ids[(worker + self.workers * turn) % len(self.ids)]


def post_replace(client: Client, fx: Fixture, concurrency: int) -> Pairing:
    api_turns, raw_turns = (
        _Rotation(fx.update_ids, concurrency),
        _Rotation(fx.update_ids, concurrency),
    )

    async def api(_index: int, worker: int) -> None:
        path = connectivity_path(fx.writes, "/" + api_turns.next(worker))
        body = fx.fresh_bodies.take_encoded()
        await client.api("POST", path, fx.tokens[fx.writes.id], 200, body)

    async def raw(_index: int, worker: int) -> None:
        stored = await client.couch_get_doc(fx.writes.db, raw_turns.next(worker))
        private = {k: v for k, v in stored.items() if k.startswith(("_", "pvt_"))}
        doc = {**fx.fresh_bodies.take(), **private, "pvt_modified": now_gregorian()}
        await client.couch_put_doc(fx.writes.db, doc)

    return Pairing("POST (replace)", api, raw)


def patch_merge(client: Client, fx: Fixture, concurrency: int) -> Pairing:
    api_turns, raw_turns = (
        _Rotation(fx.update_ids, concurrency),
        _Rotation(fx.update_ids, concurrency),
    )

    async def api(index: int, worker: int) -> None:
        path = connectivity_path(fx.writes, "/" + api_turns.next(worker))
        body = encode({"data": {"custom_field": index}})
        await client.api("PATCH", path, fx.tokens[fx.writes.id], 200, body)

    async def raw(index: int, worker: int) -> None:
        doc = await client.couch_get_doc(fx.writes.db, raw_turns.next(worker))
        doc["custom_field"] = index
        doc["pvt_modified"] = now_gregorian()
        await client.couch_put_doc(fx.writes.db, doc)

    return Pairing("PATCH (merge)", api, raw)


def soft_delete(client: Client, fx: Fixture) -> Pairing:
    async def api(_index: int, _worker: int) -> None:
        path = connectivity_path(fx.writes, "/" + fx.delete_pool.take())
        await client.api("DELETE", path, fx.tokens[fx.writes.id], 200)

    async def raw(_index: int, _worker: int) -> None:
        doc = await client.couch_get_doc(fx.writes.db, fx.delete_pool.take())
        doc["pvt_deleted"] = True
        doc["pvt_modified"] = now_gregorian()
        await client.couch_put_doc(fx.writes.db, doc)

    return Pairing("DELETE (soft)", api, raw)


def view_url(client: Client, account: AccountRef, query: str, view: str = LISTING_VIEW) -> str:
    return f"{client.couch_base}/{quote_db(account.db)}/{view}?{query}"


def list_page(
    client: Client,
    fx: Fixture,
    account: AccountRef | None = None,
    *,
    view: str = LISTING_VIEW,
    name: str = "list 1 page of 50",
) -> Pairing:
    account = account or fx.main
    token = fx.tokens[account.id]
    url = view_url(client, account, "reduce=false&descending=true&limit=51", view)

    async def api(_index: int, _worker: int) -> None:
        await client.api("GET", connectivity_path(account), token, 200)

    async def raw(_index: int, _worker: int) -> None:
        await client.couch("GET", url, 200)

    return Pairing(name, api, raw)


def list_everything(client: Client, fx: Fixture) -> Pairing:
    token = fx.tokens[fx.main.id]
    url = view_url(client, fx.main, "reduce=false&descending=true")

    async def api(_index: int, _worker: int) -> None:
        await client.api("GET", connectivity_path(fx.main, "?paginate=false"), token, 200)

    async def raw(_index: int, _worker: int) -> None:
        await client.couch("GET", url, 200)

    return Pairing("list paginate=false", api, raw)


# The same reads through the second service, whose read cache is off (bench/stack.py).
UNCACHED_GET = "GET, read cache off"
UNCACHED_LIST = "list 1 page, cache off"


def uncached_pairings(uncached: Client, fx: Fixture) -> list[Pairing]:
    return [
        get_one(uncached, fx, name=UNCACHED_GET),
        list_page(uncached, fx, name=UNCACHED_LIST),
    ]


def pairings(client: Client, fx: Fixture, concurrency: int) -> list[Pairing]:
    return [
        floor(client),
        get_one(client, fx),
        put_new(client, fx),
        post_replace(client, fx, concurrency),
        patch_merge(client, fx, concurrency),
        soft_delete(client, fx),
        list_page(client, fx),
        list_everything(client, fx),
    ]


def shuffled(ids: list[str], seed: int) -> list[str]:
    copy = list(ids)
    random.Random(seed).shuffle(copy)
    return copy
