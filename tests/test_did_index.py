"""The duplicate-DID check answered from memory (service/numbers/did_index.py).

Once an account's index is built, a write's DIDs are checked without a view query, and
numbers are claimed from the check until the save: concurrent writes through one
instance can no longer both add the same number. Changes made elsewhere (KAZOO, another
instance) reach the index through the database's changes feed; a lost feed drops the
index and the view answers until it is rebuilt.
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient
from faultproxy import FaultProxy
from helpers import assert_kazoo_error, call, create_trunk, put_trunk
from instances import instance, now, until
from number_helpers import fresh_number, kazoo_number, npan, routing_trunk, store_number

from service.couchdb.client import CouchClient
from service.http.services import SERVICES
from service.numbers import did_index
from service.numbers.did_index import DidIndex

LOOKUP_DID = "_view/lookup_did"


def _index(api: TestClient) -> DidIndex:
    return api.server.app[SERVICES].did_index


async def _indexed(api: TestClient, account) -> None:  # type: ignore[no-untyped-def]
    """Repeated writes start the account's index; wait until it answers."""
    for _ in range(did_index.WRITES_BEFORE_INDEX):
        await create_trunk(api, account, routing_trunk([fresh_number()]))
    index = _index(api)
    await until(lambda: now(index.is_ready(account.db)), f"the DID index of {account.db}")


def _feeds_opened(proxy: FaultProxy, db: str) -> int:
    name = db.replace("/", "%2F")
    return sum(1 for _method, path in proxy.seen if f"{name}/_changes" in path)


def _view_queries(proxy: FaultProxy) -> int:
    return sum(1 for _method, path in proxy.seen if LOOKUP_DID in path)


async def test_an_indexed_account_checks_dids_without_a_view_query(
    proxied_api, proxy, make_account
):
    account = await make_account("Indexed")
    await _indexed(proxied_api, account)
    number = fresh_number()
    before = _view_queries(proxy)

    first = await put_trunk(proxied_api, account, routing_trunk([number, fresh_number()]))
    again = await put_trunk(proxied_api, account, routing_trunk(["1" + npan(number)]))

    assert first.status == 201
    data = assert_kazoo_error(again, 400, "validation error")
    assert data[f"servers.0.DIDs.1{npan(number)}"]["unique"]["cause"] == first.data["id"]
    assert _view_queries(proxy) == before


async def test_concurrent_writes_cannot_both_add_a_number(proxied_api, make_account):
    account = await make_account("Racing")
    await _indexed(proxied_api, account)
    for _round in range(3):
        number = fresh_number()
        replies = await asyncio.gather(
            *(
                put_trunk(proxied_api, account, routing_trunk([number], name=f"racer {n}"))
                for n in range(8)
            )
        )
        statuses = sorted(reply.status for reply in replies)
        assert statuses == [201] + [400] * 7, statuses


async def test_a_doc_written_elsewhere_is_seen_and_its_removal_too(
    proxied_api, couch: CouchClient, make_account
):
    account = await make_account("Elsewhere")
    await _indexed(proxied_api, account)
    number = fresh_number()
    # KAZOO (or another proxied_api) stores a trunk routing `number`, not through us.
    holder = await put_trunk(proxied_api, account, routing_trunk([]))
    stored = await couch.get_doc(account.db, holder.data["id"])
    stored["servers"] = routing_trunk([npan(number)])["servers"]
    await couch.put_doc(account.db, stored)
    index = _index(proxied_api)

    async def routed() -> bool:
        return bool(index.conflicts(account.db, "probe", [number]))

    await until(routed, "the foreign write to reach the index")
    data = assert_kazoo_error(
        await put_trunk(proxied_api, account, routing_trunk([number])), 400, "validation error"
    )
    assert data[f"servers.0.DIDs.{number}"]["unique"]["cause"] == holder.data["id"]

    stored = await couch.get_doc(account.db, holder.data["id"])
    await couch.put_doc(account.db, {**stored, "pvt_deleted": True})
    await until(lambda: now(not index.conflicts(account.db, "probe", [number])), "the removal")
    await create_trunk(proxied_api, account, routing_trunk([number]))


async def test_dids_of_a_disabled_server_are_free_as_in_lookup_did(proxied_api, make_account):
    account = await make_account("Disabled")
    await _indexed(proxied_api, account)
    number = fresh_number()
    parked = routing_trunk([number])
    parked["servers"][0]["enabled"] = False
    await create_trunk(proxied_api, account, parked)
    await create_trunk(proxied_api, account, routing_trunk([number]))


async def test_a_lost_feed_drops_the_index_and_the_check_still_holds(
    proxied_api, proxy, make_account
):
    account = await make_account("Outage")
    await _indexed(proxied_api, account)
    number = fresh_number()
    await create_trunk(proxied_api, account, routing_trunk([number]))
    index = _index(proxied_api)

    await proxy.go_down()
    try:
        await until(lambda: now(not index.is_ready(account.db)), "the index to be dropped")
    finally:
        await proxy.come_up()

    # Right away (the view answers) and once rebuilt (memory answers): still refused.
    assert_kazoo_error(
        await put_trunk(proxied_api, account, routing_trunk([number])), 400, "validation error"
    )
    await until(lambda: now(index.is_ready(account.db)), "the index to be rebuilt")
    assert_kazoo_error(
        await put_trunk(proxied_api, account, routing_trunk([number])), 400, "validation error"
    )


async def test_an_account_too_big_for_memory_is_checked_through_the_view(
    proxied_api, proxy, make_account, monkeypatch
):
    monkeypatch.setattr(did_index, "MAX_DOCS", 8)
    account = await make_account("Big")
    await _indexed(proxied_api, account)
    numbers = [fresh_number() for _ in range(6)]
    for number in numbers:
        await create_trunk(proxied_api, account, routing_trunk([number]))
    assert not _index(proxied_api).is_ready(account.db)

    before = _view_queries(proxy)
    reply = await put_trunk(proxied_api, account, routing_trunk([numbers[0]]))
    assert_kazoo_error(reply, 400, "validation error")
    assert _view_queries(proxy) > before
    assert not _index(proxied_api).is_ready(account.db)


async def test_a_doc_bigger_than_a_feed_line_limit_is_indexed(
    proxied_api, proxy, couch: CouchClient, make_account
):
    account = await make_account("Large")
    await _indexed(proxied_api, account)
    feeds_opened = _feeds_opened(proxy, account.db)
    number, later = fresh_number(), fresh_number()
    large = {**routing_trunk([number]), "notes": "n" * 700_000}  # past aiohttp's 512 kB lines
    await create_trunk(proxied_api, account, large)
    # A doc written straight into CouchDB after the large one: once its row reached the
    # index, the feed has delivered the large doc's row before it (rows come in order).
    marker = await create_trunk(proxied_api, account, routing_trunk([]))
    stored = await couch.get_doc(account.db, marker.data["id"])
    await couch.put_doc(account.db, {**stored, "servers": routing_trunk([later])["servers"]})
    index = _index(proxied_api)
    await until(
        lambda: now(bool(index.conflicts(account.db, "probe", [later]))),
        "the feed to deliver the rows after the large doc",
    )
    assert index.is_ready(account.db), "the large row did not cost the feed"
    assert _feeds_opened(proxy, account.db) == feeds_opened, "nor made it reopen"
    before = _view_queries(proxy)
    reply = await put_trunk(proxied_api, account, routing_trunk([number]))
    assert_kazoo_error(reply, 400, "validation error")
    assert _view_queries(proxy) == before


async def test_the_read_cache_and_the_index_share_one_feed(proxied_api, proxy, make_account):
    account = await make_account("Shared")
    doc_id = str(
        (await put_trunk(proxied_api, account, routing_trunk([fresh_number()]))).data["id"]
    )
    url = account.url(f"/{doc_id}")
    reads = proxied_api.server.app[SERVICES].reads
    await call(proxied_api, "GET", url, token=account.token)
    await until(lambda: now(reads.is_following(account.db)), "the read cache's feed")
    await _indexed(proxied_api, account)  # reopens the feed with docs, once

    for _ in range(3):
        await create_trunk(proxied_api, account, routing_trunk([fresh_number()]))
        assert (await call(proxied_api, "GET", url, token=account.token)).status == 200

    feeds = [path for _m, path in proxy.seen if "/_changes" in path and "account%2F" in path]
    opened_here = [path for path in feeds if account.db.replace("/", "%2F") in path]
    assert len(opened_here) == 2, opened_here  # without docs, then with them
    assert "include_docs=true" in opened_here[-1]
    assert reads.is_following(account.db) and _index(proxied_api).is_ready(account.db)


async def test_a_number_is_free_again_right_after_a_hard_delete(proxied_api, make_account):
    account = await make_account("Hard")
    await _indexed(proxied_api, account)
    number = fresh_number()
    for _round in range(3):
        created = await create_trunk(proxied_api, account, routing_trunk([number]))
        item = account.url(f"/{created.data['id']}")
        params = {"should_soft_delete": "false"}
        deleted = await call(proxied_api, "DELETE", item, token=account.token, params=params)
        assert deleted.status == 200, deleted.text
        # The very next write may route it: nothing waits for the feed to report the delete.
    assert _index(proxied_api).is_ready(account.db)


async def test_the_store_frees_a_hard_deleted_docs_numbers_before_the_feed(
    proxied_api, make_account
):
    account = await make_account("Hard, reported")
    await _indexed(proxied_api, account)
    index, number = _index(proxied_api), fresh_number()
    # What the store tells the index after its writes, without waiting for the feed
    # (which would repair it a moment later): saved at revision 3, then removed for good.
    stored = {"_id": "hard", "_rev": "3-abc", "pvt_type": "sys_info", **routing_trunk([number])}
    index.saved(account.db, "hard", stored)
    assert index.conflicts(account.db, "other", [number]) == {number: "hard"}
    index.saved(account.db, "hard", None)
    assert index.conflicts(account.db, "other", [number]) == {}


async def test_numbers_of_a_refused_write_are_free_again(
    proxied_api, couch: CouchClient, make_account
):
    top = await make_account("Top")  # a top-level account may use any number: not this one
    account = await make_account("Refused", parent=top)
    await _indexed(proxied_api, account)
    owner = await make_account("Owner", parent=top)
    number, theirs = fresh_number(), fresh_number()
    await store_number(couch, kazoo_number(theirs, owner=owner.id))
    # Refused for ownership (403), and refused by CouchDB (409, a client id in use).
    refused = await put_trunk(proxied_api, account, routing_trunk([number, theirs]))
    assert_kazoo_error(refused, 403, "forbidden")
    taken_id = (await create_trunk(proxied_api, account, routing_trunk([]))).data["id"]
    conflict = await put_trunk(proxied_api, account, {**routing_trunk([number]), "id": taken_id})
    assert_kazoo_error(conflict, 409, "datastore_conflict")
    # Neither left `number` claimed: the next write may route it.
    assert _index(proxied_api).conflicts(account.db, "probe", [number]) == {}
    await create_trunk(proxied_api, account, routing_trunk([number]))


async def test_turned_off_every_check_asks_the_view(proxy, make_account):
    async with instance(proxy.url, did_index_databases=0) as api:
        account = await make_account("Unindexed")
        number = fresh_number()
        for _ in range(did_index.WRITES_BEFORE_INDEX + 1):
            await create_trunk(api, account, routing_trunk([fresh_number()]))
        await create_trunk(api, account, routing_trunk([number]))
        before = _view_queries(proxy)
        assert_kazoo_error(
            await put_trunk(api, account, routing_trunk([number])), 400, "validation error"
        )
        assert _view_queries(proxy) > before
        assert not _index(api).is_ready(account.db)
