"""Concurrent writers: CouchDB's MVCC must show through, no update is ever lost.

Every write loads the doc and saves it at the revision it loaded, so of several
concurrent writers exactly those whose save CouchDB accepted answer 200; the others get
409 `datastore_conflict` (or 412 when they asked for a revision with If-Match). The
number of 200s therefore equals the number of revisions the doc advanced.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from helpers import Reply, assert_kazoo_error, call, create_trunk
from instances import instance, now, until
from reliability import FIGURES, unique_trunk

from service.couchdb.client import CouchClient
from service.kazoo.ids import new_id
from service.stores.accounts import NewAccount, RealmTaken

WRITERS = 20


def rev_number(rev: str) -> int:
    return int(rev.split("-", 1)[0])


async def _create(api: TestClient, owner, **fields) -> Reply:
    return await create_trunk(api, owner, unique_trunk(**fields))


def _check_race(replies: list[Reply], allowed: tuple[int, ...] = (200, 409)) -> list[Reply]:
    """Every answer is a success or a KAZOO conflict; returns the successes."""
    for reply in replies:
        assert reply.status in allowed, reply.text
        if reply.status == 409:
            assert_kazoo_error(reply, 409, "datastore_conflict")
        if reply.status == 412:
            assert_kazoo_error(reply, 412, "precondition_failed")
    FIGURES["concurrent_writers"] += len(replies)
    return [reply for reply in replies if reply.status == 200]


async def _assert_no_lost_update(
    api: TestClient, couch: CouchClient, account, doc_id: str, start_rev: str, wins: list[Reply]
) -> Reply:
    final = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
    assert final.status == 200
    advanced = rev_number(final.body["revision"]) - rev_number(start_rev)
    FIGURES["lost_updates"] += len(wins) - advanced
    assert len(wins) == advanced, "every acknowledged write is one revision, no more, no less"
    # Each success got its own revision, one after the other.
    assert sorted(rev_number(w.body["revision"]) for w in wins) == list(
        range(rev_number(start_rev) + 1, rev_number(start_rev) + advanced + 1)
    )
    last = max(wins, key=lambda w: rev_number(w.body["revision"]))
    assert final.body["revision"] == last.body["revision"]
    assert final.data == last.data, "the stored doc is exactly the last successful body"
    raw = await couch.get_doc(account.db, doc_id, conflicts="true")
    assert "_conflicts" not in raw, "no conflicting branches: CouchDB refused every stale write"
    return final


async def test_concurrent_posts_to_one_document(api, couch, master):
    created = await _create(api, master)
    doc_id = created.data["id"]
    bodies = [
        {"name": f"writer {i}", "custom_field": i, "servers": [], "account": {"trunks": i}}
        for i in range(WRITERS)
    ]
    replies = await asyncio.gather(
        *(call(api, "POST", master.url(f"/{doc_id}"), data=b, token=master.token) for b in bodies)
    )
    wins = _check_race(list(replies))
    assert wins
    final = await _assert_no_lost_update(api, couch, master, doc_id, created.body["revision"], wins)
    sent = bodies[final.data["custom_field"]]
    assert final.data["name"] == sent["name"]
    assert final.data["account"]["trunks"] == sent["account"]["trunks"]


async def test_concurrent_patches_keep_every_acknowledged_change(api, couch, master):
    created = await _create(api, master)
    doc_id = created.data["id"]
    replies = await asyncio.gather(
        *(
            call(api, "PATCH", master.url(f"/{doc_id}"), data={f"patch_{i}": i}, token=master.token)
            for i in range(WRITERS)
        )
    )
    wins = _check_race(list(replies))
    assert wins
    final = await _assert_no_lost_update(api, couch, master, doc_id, created.body["revision"], wins)
    # A PATCH merges onto what it loaded: the doc holds exactly the acknowledged patches.
    acknowledged = {key for w in wins for key in w.data if key.startswith("patch_")}
    assert {key for key in final.data if key.startswith("patch_")} == acknowledged
    assert len(acknowledged) == len(wins)


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("first_to_save", ["POST", "DELETE"])
async def test_delete_racing_post(proxied_api, proxy, master, hard, first_to_save):
    """Both orders of the race, forced: the proxy holds the CouchDB write of the request
    that loaded first until the other one has saved, so the held one meets a conflict."""
    created = await _create(proxied_api, master)
    doc_id = created.data["id"]
    item = master.url(f"/{doc_id}")
    params = {"should_soft_delete": "false"} if hard else None
    delete_write = "DELETE" if hard else "PUT"
    held_first = "DELETE" if first_to_save == "POST" else "POST"
    release = asyncio.Event()
    held = proxy.inject(
        "delay_request",
        method=delete_write if held_first == "DELETE" else "PUT",
        path_contains=f"/{doc_id}",
        hold_until=release,
    )

    def send(method: str) -> asyncio.Task[Reply]:
        if method == "DELETE":
            request = call(proxied_api, "DELETE", item, token=master.token, params=params)
        else:
            request = call(proxied_api, "POST", item, data={"name": "racer"}, token=master.token)
        return asyncio.create_task(request)

    loser = send(held_first)
    await until(lambda: now(held.hits == 1), f"the {held_first}'s write to be held")
    winner = await send(first_to_save)
    release.set()
    lost = await loser
    FIGURES["concurrent_writers"] += 2

    assert winner.status == 200, winner.text
    assert_kazoo_error(lost, 409, "datastore_conflict")
    final = await call(proxied_api, "GET", item, token=master.token)
    if first_to_save == "DELETE":
        assert_kazoo_error(final, 404, "bad_identifier")
    else:
        assert final.status == 200 and final.data == winner.data


async def test_concurrent_first_writes_to_a_new_account(api, make_account):
    account = await make_account("Fresh")
    replies = await asyncio.gather(
        *(
            call(api, "PUT", account.url(), data={"name": f"first {i}"}, token=account.token)
            for i in range(WRITERS)
        )
    )
    FIGURES["concurrent_writers"] += len(replies)
    assert [r.status for r in replies] == [201] * WRITERS
    ids = {r.data["id"] for r in replies}
    assert len(ids) == WRITERS
    listing = await call(
        api, "GET", account.url(), token=account.token, params={"paginate": "false"}
    )
    assert set(listing.data) == ids


async def test_concurrent_creates_with_the_same_client_id(api, master):
    doc_id = new_id()
    replies = await asyncio.gather(
        *(
            call(api, "PUT", master.url(), data={"id": doc_id, "n": i}, token=master.token)
            for i in range(10)
        )
    )
    FIGURES["concurrent_writers"] += len(replies)
    created = [r for r in replies if r.status == 201]
    assert len(created) == 1
    for reply in replies:
        if reply.status != 201:
            assert_kazoo_error(reply, 409, "datastore_conflict")
    stored = await call(api, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert stored.data == created[0].data


async def test_concurrent_first_listings_install_the_views_once(api, couch, make_account):
    """An account database without our design doc (e.g. replicated from KAZOO): the
    first listings race to install it, and all of them answer."""
    account = await make_account("No views")
    ddoc = await couch.get_doc(account.db, "_design/trunkstore")
    tombstone = await couch.delete_doc(account.db, "_design/trunkstore", ddoc["_rev"])
    await _create(api, account)
    replies = await asyncio.gather(
        *(call(api, "GET", account.url(), token=account.token) for _ in range(10))
    )
    assert [r.status for r in replies] == [200] * 10
    assert all(len(r.data) == 1 for r in replies)
    # Written once: one revision after the deletion's, whoever won the race.
    installed = await couch.get_doc(account.db, "_design/trunkstore")
    assert rev_number(installed["_rev"]) == rev_number(tombstone.rev) + 1


async def test_concurrent_account_creation_with_one_realm(couch_url):
    """`create-account` run many times at once with one realm: exactly one wins, even
    from separate processes (each attempt has its own CouchDB client here)."""
    from service.stores.accounts import AccountStore

    realm = f"race-{new_id()[:8]}.sip.example"
    clients = [CouchClient(couch_url) for _ in range(10)]
    try:
        for client in clients:
            await client.open()
        results = await asyncio.gather(
            *(AccountStore(c).create(f"Racer {i}", realm, None) for i, c in enumerate(clients)),
            return_exceptions=True,
        )
    finally:
        for client in clients:
            await client.close()
    winners = [r for r in results if isinstance(r, NewAccount)]
    assert len(winners) == 1
    assert all(isinstance(r, RealmTaken) for r in results if r is not winners[0])
    async with CouchClient(couch_url) as client:
        rows = await client.view("accounts", "connectivity_accounts", "listing_by_realm", key=realm)
    assert [row["id"] for row in rows["rows"]] == [winners[0].doc["_id"]]


@pytest_asyncio.fixture(scope="module")
async def second_instance(couch_url: str) -> AsyncIterator[TestClient]:
    """Another service instance (as another process would be) on the same CouchDB."""
    async with instance(couch_url) as client:
        yield client


async def test_two_service_instances_behave_as_one(api, second_instance, couch, master):
    created = await _create(second_instance, master)
    doc_id = created.data["id"]
    instances = (api, second_instance)
    replies = await asyncio.gather(
        *(
            call(
                instances[i % 2],
                "PATCH",
                master.url(f"/{doc_id}"),
                data={f"patch_{i}": i},
                token=master.token,
            )
            for i in range(WRITERS)
        )
    )
    wins = _check_race(list(replies))
    assert wins
    await _assert_no_lost_update(api, couch, master, doc_id, created.body["revision"], wins)
    # A token issued by one instance is honoured by the other (one signing key in CouchDB).
    login = await call(second_instance, "PUT", "/v2/api_auth", data={"api_key": master.api_key})
    assert login.status == 201
    reply = await call(api, "GET", master.url(), token=login.body["auth_token"])
    assert reply.status == 200


# -- §13 preconditions, beyond tests/test_errors.py::test_conditional_requests -----------


async def test_if_match_with_the_current_revision_allows_every_write(api, master):
    for method in ("POST", "PATCH", "DELETE"):
        created = await _create(api, master)
        item = master.url(f"/{created.data['id']}")
        tags = f'"1-other", "{created.body["revision"]}"'
        reply = await call(
            api, method, item, data={"name": "x"}, token=master.token, headers={"If-Match": tags}
        )
        assert reply.status == 200, (method, reply.text)


async def test_if_none_match_on_writes_is_412_and_changes_nothing(api, master):
    created = await _create(api, master)
    item = master.url(f"/{created.data['id']}")
    for method in ("POST", "PATCH", "DELETE"):
        for tag in (f'"{created.body["revision"]}"', "*"):
            reply = await call(
                api, method, item, data={}, token=master.token, headers={"If-None-Match": tag}
            )
            assert_kazoo_error(reply, 412, "precondition_failed")
    unchanged = await call(api, "GET", item, token=master.token)
    assert unchanged.body["revision"] == created.body["revision"]
    assert unchanged.data == created.data


async def test_preconditions_on_get(api, master):
    created = await _create(api, master)
    item = master.url(f"/{created.data['id']}")
    stale = await call(api, "GET", item, token=master.token, headers={"If-None-Match": '"1-x"'})
    assert stale.status == 200
    assert stale.headers["ETag"] == f'"{created.body["revision"]}"'
    mismatch = await call(api, "GET", item, token=master.token, headers={"If-Match": '"1-x"'})
    assert_kazoo_error(mismatch, 412, "precondition_failed")


async def test_if_match_stops_the_second_of_two_clients(api, master):
    """Two clients read the same revision; the second one's write is refused, not lost."""
    created = await _create(api, master)
    item = master.url(f"/{created.data['id']}")
    seen = {"If-Match": f'"{created.body["revision"]}"'}
    first = await call(api, "PATCH", item, data={"by": "first"}, token=master.token, headers=seen)
    assert first.status == 200
    second = await call(api, "PATCH", item, data={"by": "second"}, token=master.token, headers=seen)
    assert_kazoo_error(second, 412, "precondition_failed")
    final = await call(api, "GET", item, token=master.token)
    assert final.data["by"] == "first"


async def test_concurrent_writers_with_if_match_one_wins(api, couch, master):
    created = await _create(api, master)
    doc_id = created.data["id"]
    seen = {"If-Match": f'"{created.body["revision"]}"'}
    replies = await asyncio.gather(
        *(
            call(
                api,
                "POST" if i % 2 else "DELETE",
                master.url(f"/{doc_id}"),
                data={"name": f"w{i}"},
                token=master.token,
                headers=seen,
            )
            for i in range(WRITERS)
        )
    )
    wins = _check_race(list(replies), allowed=(200, 409, 412, 404))
    assert len(wins) == 1
