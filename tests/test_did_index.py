"""The duplicate-DID check answered from memory (service/numbers/did_index.py).

An account's index is read from its `_changes` at its first write, then every check
brings it up to date from the sequence it last applied: a write never waits for a view
index, costs what changed since the last check (not what the account holds), and still
sees every doc stored before it began, wherever it came from. Numbers are claimed from
the check until the save: concurrent writes through one instance cannot both add one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from faultproxy import FaultProxy
from helpers import assert_kazoo_error, call, create_trunk, put_trunk
from instances import instance, now, until
from number_helpers import fresh_number, kazoo_number, npan, routing_trunk, store_number

from service.couchdb.client import CouchClient
from service.http.services import SERVICES
from service.kazoo.ids import new_id
from service.numbers.did_index import APACHE_VENDOR, DidIndex

LOOKUP_DID = "_view/lookup_did"


def _index(api: TestClient) -> DidIndex:
    return api.server.app[SERVICES].did_index


async def _indexed(api: TestClient, account) -> None:  # type: ignore[no-untyped-def]
    """A first write reads the account into the index."""
    await create_trunk(api, account, routing_trunk([fresh_number()]))
    assert _index(api).is_ready(account.db)


def _changes_reads(proxy: FaultProxy, db: str) -> list[str]:
    name = db.replace("/", "%2F")
    return [path for _method, path in proxy.seen if f"{name}/_changes" in path]


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


async def test_dids_of_a_disabled_server_are_free_as_in_lookup_did(proxied_api, make_account):
    account = await make_account("Disabled")
    await _indexed(proxied_api, account)
    number = fresh_number()
    parked = routing_trunk([number])
    parked["servers"][0]["enabled"] = False
    await create_trunk(proxied_api, account, parked)
    await create_trunk(proxied_api, account, routing_trunk([number]))


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
        # The very next write may route it.
    assert _index(proxied_api).is_ready(account.db)


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
    assert await _index(proxied_api).conflicts(account.db, "probe", [number]) == {}
    await create_trunk(proxied_api, account, routing_trunk([number]))


async def test_a_doc_stored_straight_into_couchdb_just_before_is_seen_at_once(
    proxied_api, couch: CouchClient, make_account
):
    account = await make_account("Elsewhere")
    await _indexed(proxied_api, account)
    number = fresh_number()
    # KAZOO (or a replication) stores a trunk routing `number`, not through us; the
    # very next write through us is checked against it, with no wait of any kind.
    holder = await put_trunk(proxied_api, account, routing_trunk([]))
    stored = await couch.get_doc(account.db, holder.data["id"])
    stored["servers"] = routing_trunk([npan(number)])["servers"]
    await couch.put_doc(account.db, stored)
    data = assert_kazoo_error(
        await put_trunk(proxied_api, account, routing_trunk([number])), 400, "validation error"
    )
    assert data[f"servers.0.DIDs.{number}"]["unique"]["cause"] == holder.data["id"]

    # Its removal, straight into CouchDB too, frees the number just as fast.
    stored = await couch.get_doc(account.db, holder.data["id"])
    await couch.put_doc(account.db, {**stored, "pvt_deleted": True})
    await create_trunk(proxied_api, account, routing_trunk([number]))


async def test_later_checks_read_only_what_changed_since(proxied_api, proxy, make_account):
    account = await make_account("Incremental")
    await _indexed(proxied_api, account)
    for _ in range(5):
        await create_trunk(proxied_api, account, routing_trunk([fresh_number()]))
    reads = _changes_reads(proxy, account.db)
    assert sum("since=0" in path for path in reads) == 1, reads  # the first write only
    before = _view_queries(proxy)
    number = fresh_number()
    await create_trunk(proxied_api, account, routing_trunk([number]))
    assert_kazoo_error(
        await put_trunk(proxied_api, account, routing_trunk([number])), 400, "validation error"
    )
    assert _view_queries(proxy) == before


async def test_a_doc_bigger_than_a_feed_line_is_read(proxied_api, couch: CouchClient, make_account):
    account = await make_account("Large")
    await _indexed(proxied_api, account)
    number = fresh_number()
    large = {**routing_trunk([number]), "notes": "n" * 700_000}  # past aiohttp's 512 kB lines
    holder = await put_trunk(proxied_api, account, routing_trunk([]))
    stored = await couch.get_doc(account.db, holder.data["id"])
    await couch.put_doc(account.db, {**stored, **large})
    assert_kazoo_error(
        await put_trunk(proxied_api, account, routing_trunk([number])), 400, "validation error"
    )


async def test_an_outage_fails_the_write_and_the_check_holds_after_it(
    proxied_api, proxy, make_account
):
    account = await make_account("Outage")
    await _indexed(proxied_api, account)
    number = fresh_number()
    await create_trunk(proxied_api, account, routing_trunk([number]))
    await proxy.go_down()
    try:
        down = await put_trunk(proxied_api, account, routing_trunk([fresh_number()]))
        assert down.status == 503, down.text
    finally:
        await proxy.come_up()
    assert_kazoo_error(
        await put_trunk(proxied_api, account, routing_trunk([number])), 400, "validation error"
    )
    # The write that failed left nothing claimed.
    await create_trunk(proxied_api, account, routing_trunk([fresh_number()]))


async def test_an_account_over_the_numbers_budget_is_checked_through_the_view(proxy, make_account):
    async with instance(proxy.url, did_index_numbers=4) as api:
        account = await make_account("Big")
        numbers = [fresh_number() for _ in range(6)]
        for number in numbers:
            await create_trunk(api, account, routing_trunk([number]))
        assert not _index(api).is_ready(account.db)
        before = _view_queries(proxy)
        reply = await put_trunk(api, account, routing_trunk([numbers[0]]))
        assert_kazoo_error(reply, 400, "validation error")
        assert _view_queries(proxy) > before


async def test_the_budget_keeps_the_most_recently_written_accounts(proxy, make_account):
    async with instance(proxy.url, did_index_numbers=3) as api:
        first, second = await make_account("First"), await make_account("Second")
        await create_trunk(api, first, routing_trunk([fresh_number(), fresh_number()]))
        await create_trunk(api, second, routing_trunk([fresh_number(), fresh_number()]))
        assert _index(api).is_ready(second.db) and not _index(api).is_ready(first.db)
        assert _index(api).numbers() <= 3


async def test_numbers_a_write_frees_leave_the_budget_to_other_accounts(proxy, make_account):
    async with instance(proxy.url, did_index_numbers=3) as api:
        first, second = await make_account("Frees"), await make_account("Takes")
        trunk = await create_trunk(api, first, routing_trunk([fresh_number(), fresh_number()]))
        deleted = await call(api, "DELETE", first.url(f"/{trunk.data['id']}"), token=first.token)
        assert deleted.status == 200
        await create_trunk(api, second, routing_trunk([fresh_number(), fresh_number()]))
        # Two numbers in all: both accounts fit, the first one was not dropped for room.
        assert _index(api).is_ready(first.db) and _index(api).is_ready(second.db)
        assert _index(api).numbers() == 2


async def test_turned_off_every_check_asks_the_view(proxy, make_account):
    async with instance(proxy.url, did_index_databases=0) as api:
        account = await make_account("Unindexed")
        number = fresh_number()
        await create_trunk(api, account, routing_trunk([number]))
        before = _view_queries(proxy)
        assert_kazoo_error(
            await put_trunk(api, account, routing_trunk([number])), 400, "validation error"
        )
        assert _view_queries(proxy) > before
        assert not _index(api).is_ready(account.db)


async def test_concurrent_writes_through_an_unindexed_instance_cannot_both_add_a_number(
    api, make_account
):
    account = await make_account("Racing, unindexed")
    number = fresh_number()
    replies = await asyncio.gather(
        *(put_trunk(api, account, routing_trunk([number], name=f"racer {n}")) for n in range(8))
    )
    assert sorted(reply.status for reply in replies) == [201] + [400] * 7


async def _while_its_account_is_held(
    proxy: FaultProxy, account, request: Awaitable[Any], seen: Callable[[], bool], what: str
) -> Any:  # type: ignore[no-untyped-def]
    """Sends `request` with the GET of `account`'s doc held at the proxy; `seen` must
    come true meanwhile. Returns the request's reply, once the GET is let go."""
    release = asyncio.Event()
    account_doc = f"{account.db.replace('/', '%2F')}/{account.id}"
    held = proxy.inject(
        "delay_request", method="GET", path_contains=account_doc, hold_until=release
    )
    sending = asyncio.ensure_future(request)
    try:
        # Well within the service's CouchDB timeout, after which it would ask again.
        await until(lambda: now(held.hits == 1 and seen()), what, limit=2.0)
        assert not held.done.is_set()
    finally:
        release.set()
    return await sending


def _listings(proxy: FaultProxy) -> int:
    """Listings of the number databases: `_all_dbs` reads, or on Apache CouchDB the
    request for the info of `_dbs` that begins each (couchdb/db_listing.py)."""
    return sum(1 for _method, path in proxy.seen if _is_listing(path.split("?")[0]))


def _is_listing(path: str) -> bool:
    return path == "/_all_dbs" or (path.startswith("/_node/") and path.endswith("/_dbs"))


async def test_a_write_reads_its_account_index_while_its_account_is_loaded(proxy, make_account):
    """The DID check's reads start as the request arrives, side by side with loading the
    account and checking the token, not after them: a first write into an account waits
    for one CouchDB round trip less. (With the account cache on, the account's doc comes
    from that read itself: the next test.)"""
    account = await make_account("Read ahead")
    async with instance(proxy.url, account_cache_seconds=0) as uncached:
        reply = await _while_its_account_is_held(
            proxy,
            account,
            put_trunk(uncached, account, routing_trunk([fresh_number()])),
            lambda: bool(_changes_reads(proxy, account.db)),
            "the account's changes read while its doc is held",
        )
    assert reply.status == 201


async def test_a_write_sends_its_check_reads_before_its_body_is_validated(
    proxied_api, make_account
):
    """With the account and the token in memory nothing before the DID check waits, so
    the reads begun ahead would leave only once it did: they go out first, and CouchDB
    answers them while the body is validated (README, Performance)."""
    account = await make_account("Reads go first")
    await _indexed(proxied_api, account)
    services = proxied_api.server.app[SERVICES]
    order: list[str] = []
    send, validate = services.client.request, services.connectivity.validated_new

    async def request(method: str, path: str, **kwargs: Any) -> Any:
        order.append(f"{method} {path.split('?')[0]}")
        return await send(method, path, **kwargs)

    def validated_new(*args: Any) -> Any:
        order.append("validation")
        return validate(*args)

    services.client.request = request  # type: ignore[method-assign]
    services.connectivity.validated_new = validated_new  # type: ignore[method-assign]
    try:
        reply = await put_trunk(proxied_api, account, routing_trunk([fresh_number()]))
    finally:
        del services.client.request, services.connectivity.validated_new
    assert reply.status == 201
    assert order.index("validation") > order.index(f"GET {account.db.replace('/', '%2F')}")


async def test_a_write_with_a_bad_token_reads_nothing_ahead(proxied_api, proxy, make_account):
    account = await make_account("Bad token")
    reply = await put_trunk(
        proxied_api, account, routing_trunk([fresh_number()]), token=account.token[:-4] + "AAAA"
    )
    assert_kazoo_error(reply, 401, "invalid_credentials")
    assert not _changes_reads(proxy, account.db)
    assert not _index(proxied_api).is_ready(account.db)


async def test_after_a_save_of_unknown_outcome_only_a_later_read_answers(
    couch: CouchClient, make_account
):
    """A save whose answer was lost may have landed: a read begun before it failed no
    longer answers, even for a request that arrived before (docs §11.3)."""
    account = await make_account("Unknown outcome")
    index = DidIndex(couch)
    number = fresh_number()
    arrived = time.monotonic()
    assert await index.conflicts(account.db, "mine", [number], not_before=arrived) == {}
    index.flying(account.db)
    landed = {"_id": new_id(), "pvt_type": "sys_info", "servers": [{"DIDs": {number: {}}}]}
    await couch.put_doc(account.db, landed)
    index.lost(account.db)
    taken = await index.conflicts(account.db, "mine", [number], not_before=arrived)
    assert taken == {number: landed["_id"]}


async def test_a_patch_lists_the_number_databases_while_its_account_is_loaded(
    api, proxied_api, proxy, make_account
):
    """A PATCH without `servers` keeps the stored numbers, whose owners are checked
    again: the listing of their number databases starts as the PATCH arrives."""
    account = await make_account("Patch ahead")
    trunk = await create_trunk(
        api, account, routing_trunk([fresh_number("415")], [fresh_number("212")])
    )
    listings = _listings(proxy)
    path = account.url(f"/{trunk.data['id']}")
    reply = await _while_its_account_is_held(
        proxy,
        account,
        call(proxied_api, "PATCH", path, data={"name": "Renamed"}, token=account.token),
        lambda: _listings(proxy) > listings,
        "the number databases listed while the account doc is held",
    )
    assert reply.status == 200


async def test_a_post_lists_the_number_databases_once_for_its_check_and_its_releases(
    api, proxied_api, proxy, make_account
):
    """The numbers a POST drops are released where they have number docs: which number
    databases exist is what the check's own listing said, begun since the request
    arrived (docs §11.2), not a second listing after the save."""
    account = await make_account("Post releases")
    trunk = await create_trunk(
        api, account, routing_trunk([fresh_number("415")], [fresh_number("212")])
    )
    listings = _listings(proxy)
    replaced = routing_trunk([fresh_number("646")], [fresh_number("312")])
    reply = await call(
        proxied_api,
        "POST",
        account.url(f"/{trunk.data['id']}"),
        data=replaced,
        token=account.token,
    )
    assert reply.status == 200
    assert _listings(proxy) == listings + 1


def _database_probes(proxy: FaultProxy, db: str) -> int:
    """`GET /{db}`: the check's question whether only our saves happened since."""
    name = "/" + db.replace("/", "%2F")
    return sum(1 for method, path in proxy.seen if method == "GET" and path.split("?")[0] == name)


async def test_beside_other_writers_a_check_reads_the_changes_without_asking_first(
    proxied_api, proxy, couch: CouchClient, make_account
):
    """KAZOO's apps write into the same account database: once a check has found writes
    that were not ours, the next ones go straight to the changes (the database's
    sequence would only say so), and once only ours happen again the probe is back."""
    account = await make_account("Shared database")
    await _indexed(proxied_api, account)

    async def theirs() -> None:
        await couch.put_doc(account.db, {"_id": new_id(), "pvt_type": "device"})

    async def ours() -> None:
        await create_trunk(proxied_api, account, routing_trunk([fresh_number()]))

    await theirs()
    await ours()  # the probe finds their write: from now on, no probe
    before = _database_probes(proxy, account.db)
    for _ in range(3):
        await theirs()
        await ours()
    assert _database_probes(proxy, account.db) == before

    await ours()  # its read finds only our last save
    probes = _database_probes(proxy, account.db)
    await ours()
    assert _database_probes(proxy, account.db) == probes + 1


async def test_a_database_first_read_holding_others_docs_is_read_again_without_asking(
    proxied_api, proxy, couch: CouchClient, make_account
):
    """A database that already held docs besides the account's own when its index was
    first read is written by others too (KAZOO's apps, a replication): the next check
    goes straight to the changes, where asking first would have cost a request more each
    time it found their writes. One that held nothing else is asked first, as the
    arithmetic of our own saves then usually answers."""
    shared = await make_account("Held docs before")
    await couch.put_doc(shared.db, {"_id": new_id(), "pvt_type": "device"})
    await _indexed(proxied_api, shared)
    await couch.put_doc(shared.db, {"_id": new_id(), "pvt_type": "device"})
    probes = _database_probes(proxy, shared.db)
    reads = len(_changes_reads(proxy, shared.db))
    await create_trunk(proxied_api, shared, routing_trunk([fresh_number()]))
    assert _database_probes(proxy, shared.db) == probes
    assert len(_changes_reads(proxy, shared.db)) == reads + 1

    fresh = await make_account("Nothing held before")
    await _indexed(proxied_api, fresh)
    probes = _database_probes(proxy, fresh.db)
    await create_trunk(proxied_api, fresh, routing_trunk([fresh_number()]))
    assert _database_probes(proxy, fresh.db) == probes + 1


async def test_a_first_write_takes_its_account_doc_from_its_index_read(
    proxied_api, proxy, make_account
):
    """The account's doc is in the account's database: the index read of a first write
    comes across it, and the write reads it no other way. (Unless an account changed
    while it read: then what it read is not kept, and the doc is read apart. The
    accounts feed delivers a new account's changes a moment after it is made, and other
    tests' too, so the write waits for the feed to go quiet, and one it crossed is tried
    again with another account.)"""
    cache = proxied_api.server.app[SERVICES].account_cache
    for _attempt in range(5):
        account = await make_account("One read")
        await until(lambda: now(cache.following), "the accounts feed to open")
        generation = -1
        while generation != cache.generation:
            generation = cache.generation
            await asyncio.sleep(0.3)
        start = len(proxy.seen)

        await create_trunk(proxied_api, account, routing_trunk([fresh_number()]))

        if cache.generation == generation:
            break
    else:
        raise AssertionError("every write crossed a change of the accounts feed")
    account_doc = "/" + account.db.replace("/", "%2F") + "/" + account.id
    reads = [path for method, path in proxy.seen[start:] if method == "GET"]
    assert account_doc not in [path.split("?")[0] for path in reads], reads
    assert _changes_reads(proxy, account.db)


async def test_reads_that_meet_only_our_saves_fetch_just_the_docs_of_others(
    proxy, couch: CouchClient, make_account
):
    """Beside our own writes in flight, a check reads the changes: once one has met only
    our acknowledged saves (already in the index), the next asks for ids and revisions
    alone and fetches just the docs it does not know, so a doc stored straight into
    CouchDB meanwhile is still seen at once (README, Performance)."""
    reads, fetches, next_reads = await _reads_beside_our_saves(proxy, couch, make_account, True)
    assert len(reads) == 1 and "include_docs" not in reads[0], reads
    assert len(fetches) == 1, fetches
    # Theirs came in that read: the next one takes the docs along again.
    assert len(next_reads) == 1 and "include_docs=true" in next_reads[0], next_reads


async def test_ids_first_reads_are_for_apache_couchdb_only(proxy, couch: CouchClient, make_account):
    """The embedded server keeps each change's doc in its by-sequence store: there the
    docs come along with every read, as cheap as without them (README, Performance)."""
    vendor = (await couch.welcome())["vendor"]["name"]
    reads, fetches, _next = await _reads_beside_our_saves(proxy, couch, make_account, None)
    if vendor == APACHE_VENDOR:
        assert "include_docs" not in reads[0] and len(fetches) == 1
    else:
        assert "include_docs=true" in reads[0] and not fetches


async def _reads_beside_our_saves(
    proxy: FaultProxy, couch: CouchClient, make_account: Any, ids_first: bool | None
) -> tuple[list[str], list[str], list[str]]:
    """The changes reads and `_all_docs` fetches of a check after a read that met only
    our saves, when a doc of others' was stored straight into CouchDB since; then the
    changes reads of the check after it."""
    account = await make_account("Ids first")
    name = account.db.replace("/", "%2F")

    def changes_reads() -> list[str]:
        return [path for _method, path in proxy.seen if f"{name}/_changes" in path]

    async with CouchClient(proxy.url) as through_proxy:
        index = DidIndex(through_proxy, ids_first=ids_first)
        assert await index.conflicts(account.db, "x", []) == {}

        async def ours() -> None:
            dids = {fresh_number(): {}}
            doc = {"_id": new_id(), "pvt_type": "sys_info", "servers": [{"DIDs": dids}]}
            index.flying(account.db)
            saved = await couch.put_doc(account.db, doc)
            index.landed(account.db, doc["_id"], {**doc, "_rev": saved.rev})

        # A write of ours stays in flight throughout: every check reads the changes.
        index.flying(account.db)
        await ours()
        await index.conflicts(account.db, "x", [])  # meets only our save
        number = fresh_number()
        theirs = {"_id": new_id(), "pvt_type": "sys_info", "servers": [{"DIDs": {number: {}}}]}
        await couch.put_doc(account.db, theirs)
        await ours()
        proxy.seen.clear()
        assert await index.conflicts(account.db, "x", [number]) == {number: theirs["_id"]}
        reads = changes_reads()
        fetches = [path for method, path in proxy.seen if method == "POST" and "_all_docs" in path]
        await ours()
        proxy.seen.clear()
        await index.conflicts(account.db, "x", [])
        return reads, fetches, changes_reads()
