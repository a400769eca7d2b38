"""Big trunks: the DIDs-per-document bound as a setting, and a 50,000-DID trunk on Apache.

The bound (CONNECTIVITY_MAX_DIDS, docs/kazoo-compatibility.md §7.5) is tested on any
server with a bound of a few DIDs, so that it runs in milliseconds on the embedded
server. The 50,000-DID trunk runs on Apache CouchDB only (CONNECTIVITY_TEST_COUCH_URL):
the embedded server spends close to a minute indexing it, answering nothing else.

`test_a_50_000_did_trunk_leaves_other_requests_answered` is the suite's one test that
bounds a time (README, Tests, "No clock"): that other requests keep being answered
while a big trunk is written is the behaviour itself, and its bound, a p99 under a
second, is ten times what the bench measures (README, Big trunks).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest
from conftest import requires_apache_couch
from helpers import Reply, assert_kazoo_error, call, create_trunk, put_trunk
from instances import instance, until

from service.config import (
    APACHE_MAX_DIDS,
    EMBEDDED_MAX_DIDS,
    ConfigError,
    Settings,
    load_settings,
)

Json = dict[str, Any]

SMALL_BOUND = 5
BIG = 50_000


def trunk(count: int, first: int = 4_152_000_000, name: str = "trunk") -> Json:
    """A trunk routing `count` NANP numbers from +1`first` on."""
    dids: Json = {f"+1{first + i:010d}": {} for i in range(count)}
    return {"name": name, "servers": [{"server_name": "pbx", "auth": {}, "DIDs": dids}]}


def assert_too_many(reply: Reply, count: int, bound: int) -> None:
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data["servers"]["maxDIDs"]["target"] == bound
    assert data["servers"]["maxDIDs"]["value"] == count


def p99(values: list[float]) -> float:
    """Nearest rank: the smallest latency with at least 99 % of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


# -- the bound as a setting (any server) -----------------------------------------------


def test_the_bound_defaults_to_the_servers_and_zero_means_none():
    assert Settings().did_bound == EMBEDDED_MAX_DIDS == 10_000
    assert Settings(couch_url="http://admin:x@couch:5984").did_bound == APACHE_MAX_DIDS
    assert APACHE_MAX_DIDS == 100_000
    assert Settings(max_dids=7).did_bound == 7
    assert Settings(couch_url="http://admin:x@couch:5984", max_dids=0).did_bound is None
    assert load_settings({"CONNECTIVITY_MAX_DIDS": "250"}).did_bound == 250
    assert load_settings({"CONNECTIVITY_MAX_DIDS": "0"}).did_bound is None
    assert load_settings({"CONNECTIVITY_MAX_DIDS": ""}).did_bound == EMBEDDED_MAX_DIDS
    for bad in ("-1", "many", "1.5"):
        with pytest.raises(ConfigError, match="CONNECTIVITY_MAX_DIDS"):
            load_settings({"CONNECTIVITY_MAX_DIDS": bad})


async def test_a_doc_over_the_bound_is_a_400_and_one_at_it_is_stored(couch_url, make_account):
    owner = await make_account("Small bound")
    async with instance(couch_url, max_dids=SMALL_BOUND, read_cache_mb=0) as api:
        at_bound = await create_trunk(api, owner, trunk(SMALL_BOUND))
        assert len(at_bound.data["servers"][0]["DIDs"]) == SMALL_BOUND
        # Counted over every server, before the schema runs.
        over = trunk(3, first=4_153_000_000)
        over["servers"].append(trunk(3, first=4_154_000_000)["servers"][0])
        assert_too_many(await put_trunk(api, owner, over), 6, SMALL_BOUND)

        item = owner.url(f"/{at_bound.data['id']}")
        reply = await call(api, "POST", item, data=over, token=owner.token)
        assert_too_many(reply, 6, SMALL_BOUND)
        # A PATCH is counted as merged: one DID more than the stored five.
        extra = {"servers": [{"DIDs": {**at_bound.data["servers"][0]["DIDs"], "+14155550199": {}}}]}
        reply = await call(api, "PATCH", item, data=extra, token=owner.token)
        assert_too_many(reply, SMALL_BOUND + 1, SMALL_BOUND)

        stored = await call(api, "GET", item, token=owner.token)
        assert stored.data["servers"] == at_bound.data["servers"]
        listing = await call(api, "GET", owner.url(), token=owner.token)
        assert listing.data == [at_bound.data["id"]]


async def test_no_bound_when_it_is_zero(couch_url, make_account):
    owner = await make_account("No bound")
    async with instance(couch_url, max_dids=0, read_cache_mb=0) as api:
        # Past the embedded server's default too, if that were the bound: it is not.
        reply = await create_trunk(api, owner, trunk(SMALL_BOUND * 4))
        assert len(reply.data["servers"][0]["DIDs"]) == SMALL_BOUND * 4


# -- a 50,000-DID trunk on Apache CouchDB ------------------------------------------------


class SmallTraffic:
    """Small requests of another account, sent until stopped: GETs of a small trunk,
    every fifth a small PUT (with DIDs of its own: a DID twice in an account is a 400)."""

    def __init__(self, api: Any, owner: Any, doc_id: str) -> None:
        self.api, self.owner, self.doc_id = api, owner, doc_id
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stopped = asyncio.Event()
        self.puts = 0

    async def client(self) -> None:
        sent = 0
        while not self.stopped.is_set():
            sent += 1
            started = time.perf_counter()
            if sent % 5 == 0:
                self.puts += 1
                body = trunk(1, first=7_182_000_000 + self.puts, name="small")
                reply, expected = await put_trunk(self.api, self.owner, body), 201
            else:
                item = self.owner.url(f"/{self.doc_id}")
                reply, expected = await call(self.api, "GET", item, token=self.owner.token), 200
            self.latencies.append(time.perf_counter() - started)
            if reply.status != expected:
                self.failures.append(f"{reply.status} {reply.text[:200]}")


@requires_apache_couch
async def test_a_50_000_did_trunk_leaves_other_requests_answered(api, make_account):
    big_owner = await make_account("Big trunk")
    small_owner = await make_account("Small trunks")
    small = await create_trunk(api, small_owner, trunk(1, first=6_462_000_000, name="small"))
    traffic = SmallTraffic(api, small_owner, small.data["id"])
    clients = [asyncio.create_task(traffic.client()) for _ in range(4)]
    try:
        created = await put_trunk(api, big_owner, trunk(BIG, name="big"))
    finally:
        traffic.stopped.set()
        await asyncio.gather(*clients)
    assert created.status == 201, created.text[:500]
    assert len(created.data["servers"][0]["DIDs"]) == BIG
    assert not traffic.failures, traffic.failures[:5]
    assert len(traffic.latencies) >= 100, "too few small requests to speak of a p99"
    assert p99(traffic.latencies) < 1.0, (
        f"p99 {p99(traffic.latencies):.3f} s over {len(traffic.latencies)} small requests"
    )

    item = big_owner.url(f"/{created.data['id']}")
    read = await call(api, "GET", item, token=big_owner.token)
    assert read.status == 200
    assert read.data["servers"][0]["DIDs"] == created.data["servers"][0]["DIDs"]

    replaced = await call(api, "POST", item, data=trunk(BIG, name="renamed"), token=big_owner.token)
    assert replaced.status == 200, replaced.text[:500]
    assert replaced.data["name"] == "renamed"
    patched = await call(api, "PATCH", item, data={"custom": "x"}, token=big_owner.token)
    assert patched.status == 200, patched.text[:500]
    assert len(patched.data["servers"][0]["DIDs"]) == BIG

    # The listing's view first indexes the trunk's 50,000 rows, in CouchDB's own
    # processes: that may outlast CouchDB's own view timeout (60 s), which is then a
    # 503 until the index has caught up (README, Big trunks).
    async def listed() -> bool:
        listing = await call(api, "GET", big_owner.url(), token=big_owner.token)
        assert listing.status in (200, 503), listing.text[:500]
        return listing.status == 200 and listing.data == [created.data["id"]]

    await until(listed, "the account's listing", limit=600)
