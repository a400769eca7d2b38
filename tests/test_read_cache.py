"""Connectivity reads come from memory, and never show a client an old document.

The instance under test reaches CouchDB through a proxy that records every request, so
"served from memory" is what CouchDB did not see. Changes are made three ways: through
that instance (seen on the very next request), straight into CouchDB as KAZOO or a
replication would (seen within the changes feed's latency), and by cutting CouchDB off
(nothing is served from memory while the feed is lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from faultproxy import FaultProxy
from helpers import Reply, assert_kazoo_error, call, create_trunk
from instances import PROMPTLY, instance, now, proxied_instance, until

from service.cache import reads as reads_module
from service.cache.reads import ReadCache
from service.couchdb.client import CouchClient
from service.couchdb.feed_hub import FeedHub
from service.http.services import SERVICES


async def _following(api: TestClient, db: str) -> None:
    reads = api.server.app[SERVICES].reads
    await until(lambda: now(reads.is_following(db)), f"the changes feed of {db}")


def _requests_for(proxy: FaultProxy, fragment: str) -> int:
    return sum(1 for _method, path in proxy.seen if fragment in path)


async def _trunk(api: TestClient, account, name: str = "trunk") -> str:  # type: ignore[no-untyped-def]
    """The id of a new trunk named `name`."""
    return str((await create_trunk(api, account, {"name": name})).data["id"])


async def _warm(api: TestClient, account, doc_id: str) -> Reply:  # type: ignore[no-untyped-def]
    """Reads the doc once the feed is open, so that the answer is kept."""
    await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
    await _following(api, account.db)
    reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
    assert reply.status == 200, reply.text
    return reply


# -- served from memory ------------------------------------------------------------------


async def test_a_repeated_get_does_not_reach_couchdb(proxied_api, proxy, make_account):
    account = await make_account("Cached")
    doc_id = await _trunk(proxied_api, account)
    first = await _warm(proxied_api, account, doc_id)
    before = _requests_for(proxy, doc_id)

    again = [
        await call(proxied_api, "GET", account.url(f"/{doc_id}"), token=account.token)
        for _ in range(5)
    ]

    assert _requests_for(proxy, doc_id) == before
    for reply in again:
        assert reply.status == 200
        assert reply.data == first.data
        assert reply.body["revision"] == first.body["revision"]
        assert reply.headers["ETag"] == first.headers["ETag"]


async def test_a_repeated_listing_does_not_reach_couchdb(proxied_api, proxy, make_account):
    account = await make_account("Listed")
    ids = {await _trunk(proxied_api, account, f"t{n}") for n in range(3)}
    await _warm(proxied_api, account, next(iter(ids)))
    first = await call(proxied_api, "GET", account.url(), token=account.token)
    before = _requests_for(proxy, "crossbar_listing")

    again = await call(proxied_api, "GET", account.url(), token=account.token)

    assert _requests_for(proxy, "crossbar_listing") == before
    assert set(again.data) == set(first.data) == ids
    # Different paging is a different listing: it is read.
    paged = await call(proxied_api, "GET", account.url("?page_size=1"), token=account.token)
    assert paged.data and len(paged.data) == 1 and "next_start_key" in paged.body
    assert _requests_for(proxy, "crossbar_listing") == before + 1


async def test_concurrent_identical_listings_share_one_couchdb_read(
    proxied_api, proxy, make_account
):
    account = await make_account("Burst")
    ids = {await _trunk(proxied_api, account, f"t{n}") for n in range(5)}
    await _warm(proxied_api, account, next(iter(ids)))
    before = _requests_for(proxy, "crossbar_listing")

    replies = await asyncio.gather(
        *(
            call(proxied_api, "GET", account.url("?paginate=false"), token=account.token)
            for _ in range(8)
        )
    )

    assert all(set(reply.data) == ids for reply in replies)
    assert _requests_for(proxy, "crossbar_listing") == before + 1


async def test_turned_off_every_read_reaches_couchdb(proxy, make_account):
    api = await proxied_instance(proxy, read_cache_mb=0)
    try:
        account = await make_account("Uncached")
        doc_id = await _trunk(api, account)
        before = _requests_for(proxy, doc_id)
        for _ in range(3):
            assert (
                await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
            ).status == 200
        assert _requests_for(proxy, doc_id) == before + 3
    finally:
        await api.close()


async def test_memory_stays_within_the_budget_oldest_out_first(proxy, make_account):
    async with instance(proxy.url, read_cache_mb=1) as api:
        account = await make_account("Budget")
        big = {"name": "big", "custom_notes": "x" * 60_000}
        doc_ids = [
            str((await create_trunk(api, account, {**big, "name": f"b{n}"})).data["id"])
            for n in range(41)
        ]
        await _warm(api, account, doc_ids[0])
        for doc_id in doc_ids:
            reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
            assert reply.status == 200 and reply.data["id"] == doc_id
        reads = api.server.app[SERVICES].reads
        assert 0 < reads.cached_bytes <= 1024 * 1024
        # The doc read last is answered from memory; the one read first was evicted.
        last, first = _requests_for(proxy, doc_ids[-1]), _requests_for(proxy, doc_ids[0])
        for doc_id in (doc_ids[-1], doc_ids[0]):
            reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
            assert reply.status == 200 and reply.data["custom_notes"] == big["custom_notes"]
        assert _requests_for(proxy, doc_ids[-1]) == last
        assert _requests_for(proxy, doc_ids[0]) == first + 1


async def test_an_entry_too_large_for_its_share_of_the_budget_is_never_kept(proxy, make_account):
    # 1 MB of budget, no entry above an eighth of it (reads.LARGEST_ENTRY_SHARE).
    assert reads_module.LARGEST_ENTRY_SHARE == 8
    async with instance(proxy.url, read_cache_mb=1) as api:
        account = await make_account("Largest")
        large = await _trunk(api, account, "l" * 200_000)
        small = await _trunk(api, account, "small")
        await _warm(api, account, small)
        before = {doc_id: _requests_for(proxy, doc_id) for doc_id in (large, small)}
        for _ in range(3):
            for doc_id in (large, small):
                reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
                assert reply.status == 200 and reply.data["id"] == doc_id
        assert _requests_for(proxy, large) == before[large] + 3
        assert _requests_for(proxy, small) == before[small]


async def test_an_idle_slot_is_handed_to_another_account(proxy, make_account, monkeypatch):
    # Driven, not waited for: every followed database counts as idle at once.
    monkeypatch.setattr(reads_module, "IDLE_SECONDS", 0.0)
    async with instance(proxy.url, read_cache_databases=1) as api:
        first, second = await make_account("Idle"), await make_account("Next")
        first_doc, second_doc = await _trunk(api, first), await _trunk(api, second)
        await _warm(api, first, first_doc)
        await _warm(api, second, second_doc)
        reads = api.server.app[SERVICES].reads
        assert reads.is_following(second.db) and not reads.is_following(first.db)
        before = _requests_for(proxy, second_doc)
        reply = await call(api, "GET", second.url(f"/{second_doc}"), token=second.token)
        assert reply.status == 200
        assert _requests_for(proxy, second_doc) == before


async def test_readers_that_joined_a_cancelled_read_read_for_themselves(couch, make_account):
    account = await make_account("Leader")
    hub = FeedHub(couch, heartbeat=1.0)
    cache = ReadCache(hub, max_bytes=1 << 20, max_dbs=4)
    try:
        assert await cache.doc(account.db, "d", _value(b"direct")) == b"direct"
        await until(lambda: now(cache.is_following(account.db)), "the feed to open")
        started, never = asyncio.Event(), asyncio.Event()

        async def leader_load() -> bytes:
            started.set()
            await never.wait()
            return b"leader"

        own_reads: list[str] = []

        async def joiner_load() -> bytes:
            own_reads.append("joiner")
            return b"own read"

        leader = asyncio.create_task(cache.doc(account.db, "d", leader_load))
        await started.wait()
        joiner = asyncio.create_task(cache.doc(account.db, "d", joiner_load))
        await asyncio.sleep(0)  # one turn of the loop: the joiner runs up to its wait
        assert own_reads == [], "the joiner waits on the leader's read"
        leader.cancel()
        assert await asyncio.wait_for(joiner, PROMPTLY) == b"own read"
        assert own_reads == ["joiner"]
        with pytest.raises(asyncio.CancelledError):
            await leader
        # What the joiner read is kept: the next reader is answered from memory.
        assert await cache.doc(account.db, "d", _value(b"not read")) == b"own read"
    finally:
        cache.stop()
        await hub.stop()


def _value(value: bytes) -> Callable[[], Awaitable[bytes]]:
    async def load() -> bytes:
        return value

    return load


# -- never an old document ---------------------------------------------------------------


async def test_own_writes_are_read_back_on_the_next_request(proxied_api, make_account):
    account = await make_account("Own")
    doc_id = await _trunk(proxied_api, account, "before")
    await _warm(proxied_api, account, doc_id)
    listed = await call(proxied_api, "GET", account.url(), token=account.token)
    assert listed.data == [doc_id]

    posted = await call(
        proxied_api, "POST", account.url(f"/{doc_id}"), data={"name": "posted"}, token=account.token
    )
    assert posted.status == 200
    read = await call(proxied_api, "GET", account.url(f"/{doc_id}"), token=account.token)
    assert read.data["name"] == "posted" and read.body["revision"] == posted.body["revision"]

    patched = await call(
        proxied_api,
        "PATCH",
        account.url(f"/{doc_id}"),
        data={"name": "patched"},
        token=account.token,
    )
    read = await call(proxied_api, "GET", account.url(f"/{doc_id}"), token=account.token)
    assert read.data["name"] == "patched" and read.body["revision"] == patched.body["revision"]

    other = await _trunk(proxied_api, account, "second")
    listed = await call(proxied_api, "GET", account.url(), token=account.token)
    assert set(listed.data) == {doc_id, other}

    assert (
        await call(proxied_api, "DELETE", account.url(f"/{doc_id}"), token=account.token)
    ).status == 200
    assert_kazoo_error(
        await call(proxied_api, "GET", account.url(f"/{doc_id}"), token=account.token),
        404,
        "bad_identifier",
    )
    listed = await call(proxied_api, "GET", account.url(), token=account.token)
    assert listed.data == [other]


async def test_a_change_made_straight_in_couchdb_is_seen_promptly(
    proxied_api, couch: CouchClient, make_account
):
    account = await make_account("Elsewhere")
    doc_id = await _trunk(proxied_api, account, "before")
    await _warm(proxied_api, account, doc_id)
    assert (await call(proxied_api, "GET", account.url(), token=account.token)).data == [doc_id]

    # As KAZOO, another instance or a replication would write it: not through `cached`.
    stored = await couch.get_doc(account.db, doc_id)
    stored["name"] = "changed elsewhere"
    await couch.put_doc(account.db, stored)
    twin = {**stored, "_id": "twin" + doc_id[4:], "name": "twin"}
    twin.pop("_rev")
    await couch.put_doc(account.db, twin)

    async def changed() -> bool:
        reply = await call(proxied_api, "GET", account.url(f"/{doc_id}"), token=account.token)
        return bool(reply.data["name"] == "changed elsewhere")

    async def both_listed() -> bool:
        reply = await call(proxied_api, "GET", account.url(), token=account.token)
        return set(reply.data) == {doc_id, twin["_id"]}

    await until(changed, "the changed doc")
    await until(both_listed, "the new doc in the listing")


async def test_nothing_is_served_from_memory_while_couchdb_is_cut_off(
    proxied_api, proxy, make_account
):
    account = await make_account("Outage")
    doc_id = await _trunk(proxied_api, account)
    await _warm(proxied_api, account, doc_id)

    await proxy.go_down()
    reads = proxied_api.server.app[SERVICES].reads
    try:
        # The feed notices at once when the connection drops (within three heartbeats
        # when it silently hangs): from then on, every read asks CouchDB.
        await until(lambda: now(not reads.is_following(account.db)), "the feed to be lost")
        for path in (account.url(f"/{doc_id}"), account.url()):
            reply = await call(proxied_api, "GET", path, token=account.token)
            assert_kazoo_error(reply, 503, "datastore_unreachable")
    finally:
        await proxy.come_up()

    async def back() -> bool:
        reply = await call(proxied_api, "GET", account.url(f"/{doc_id}"), token=account.token)
        return reply.status == 200

    await until(back, "the service to answer again")
    await _following(proxied_api, account.db)


async def test_a_busy_slot_is_not_taken_by_another_account(proxy, make_account):
    # One followed database: a second account does not evict the first one (which
    # would open and close a feed per read across many accounts); it is read through.
    api = await proxied_instance(proxy, read_cache_databases=1)
    try:
        first, second = await make_account("First"), await make_account("Second")
        first_doc, second_doc = await _trunk(api, first), await _trunk(api, second)
        await _warm(api, first, first_doc)
        for _ in range(3):
            for account, doc_id in ((first, first_doc), (second, second_doc)):
                reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
                assert reply.status == 200
        assert _requests_for(proxy, first_doc) <= 3  # the create's and the warm-up reads
        assert _requests_for(proxy, second_doc) >= 4  # every read of it, plus the create
        assert not api.server.app[SERVICES].reads.is_following(second.db)
    finally:
        await api.close()


async def test_a_get_from_memory_answers_what_couchdb_would(proxied_api, api, make_account):
    account = await make_account("Same")
    doc_id = await _trunk(proxied_api, account, "same ünïcode ☎")
    await _warm(proxied_api, account, doc_id)
    url = account.url(f"/{doc_id}")
    # `api` has never read it: its answer comes from CouchDB.
    fresh = await call(api, "GET", url, token=account.token)
    remembered = await call(proxied_api, "GET", url, token=account.token)
    pretty = await call(proxied_api, "GET", url + "?pretty_print=true", token=account.token)
    assert remembered.data == fresh.data == pretty.data
    assert remembered.data["name"] == "same ünïcode ☎"
    assert remembered.body["revision"] == fresh.body["revision"] == pretty.body["revision"]
    assert "\n  " in pretty.text and "\n" not in remembered.text
