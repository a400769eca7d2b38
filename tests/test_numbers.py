"""DIDs of connectivity docs: ownership (§11.1), assignment (§11.2) and uniqueness.

Number documents are written straight into CouchDB in KAZOO's shape (number_helpers),
as if replicated from a KAZOO installation; the service is driven over HTTP.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from helpers import assert_kazoo_error, call, create_trunk, put_trunk
from number_helpers import (
    copy_doc,
    fresh_number,
    kazoo_number,
    npan,
    number_doc,
    routing_trunk,
    store_number,
)

from service.couchdb.client import DocumentNotFound

# -- §11.1 ownership ----------------------------------------------------------------------


async def listed_ids(api, account):
    reply = await call(api, "GET", account.url(), token=account.token)
    assert reply.status == 200, reply.text
    return reply.data


async def test_unknown_available_and_own_numbers_pass(api, couch, customer):
    unknown, available, own = fresh_number(), fresh_number(), fresh_number()
    await store_number(couch, kazoo_number(available, owner=None, state="available"))
    await store_number(couch, kazoo_number(own, owner=customer.id))
    reply = await put_trunk(api, customer, routing_trunk([unknown, available, own]))
    assert reply.status == 201, reply.text
    # Only the account's own number becomes the trunk's; nobody's number is nobody's use,
    # and an unknown number gets no doc.
    assert (await number_doc(couch, own))["pvt_used_by"] == "trunkstore"
    assert "pvt_used_by" not in await number_doc(couch, available)
    with pytest.raises(DocumentNotFound):
        await number_doc(couch, unknown)


async def test_a_siblings_number_is_forbidden_and_nothing_is_saved(
    api, couch, make_account, reseller
):
    alice = await make_account("Alice", parent=reseller)
    bob = await make_account("Bob", parent=reseller)
    bobs = fresh_number()
    await store_number(couch, kazoo_number(bobs, owner=bob.id))
    reply = await put_trunk(api, alice, routing_trunk([fresh_number(), bobs]))
    assert assert_kazoo_error(reply, 403, "forbidden") == {"message": f"unauthorized to use {bobs}"}
    assert await listed_ids(api, alice) == []
    untouched = await number_doc(couch, bobs)
    assert "pvt_used_by" not in untouched


async def test_ancestors_and_superduper_may_use_descendants_numbers(
    api, couch, master, reseller, customer
):
    customers = fresh_number()
    await store_number(couch, kazoo_number(customers, owner=customer.id))
    await create_trunk(api, reseller, routing_trunk([customers]))
    assert (await number_doc(couch, customers))["pvt_used_by"] == "trunkstore"
    await create_trunk(api, master, routing_trunk([customers]))
    assert (await number_doc(couch, customers))["pvt_assigned_to"] == customer.id
    # …but not the other way round: the customer may not use the reseller's number.
    resellers = fresh_number()
    await store_number(couch, kazoo_number(resellers, owner=reseller.id))
    reply = await put_trunk(api, customer, routing_trunk([resellers]))
    assert_kazoo_error(reply, 403, "forbidden")
    assert "pvt_used_by" not in await number_doc(couch, resellers)


async def test_reserved_by_an_ancestor_passes(api, couch, reseller, customer):
    reserved, in_service = fresh_number(), fresh_number()
    await store_number(couch, kazoo_number(reserved, owner=reseller.id, state="reserved"))
    await store_number(couch, kazoo_number(in_service, owner=reseller.id))
    await create_trunk(api, customer, routing_trunk([reserved]))
    assert (await number_doc(couch, reserved))["pvt_used_by"] == "trunkstore"
    reply = await put_trunk(api, customer, routing_trunk([in_service]))
    assert assert_kazoo_error(reply, 403, "forbidden")["message"].endswith(in_service)
    assert "pvt_used_by" not in await number_doc(couch, in_service)


async def test_an_unassigned_number_only_passes_for_superduper(api, couch, master, customer):
    orphan = fresh_number()
    await store_number(couch, kazoo_number(orphan, owner=None, state="in_service"))
    assert_kazoo_error(await put_trunk(api, customer, routing_trunk([orphan])), 403, "forbidden")
    await create_trunk(api, master, routing_trunk([orphan]))
    assert "pvt_used_by" not in await number_doc(couch, orphan)  # owned by nobody: unused


async def test_dids_are_normalised_and_every_refusal_is_listed(api, couch, make_account, master):
    owner = await make_account("Owner", parent=master)
    intruder = await make_account("Intruder", parent=master)
    first, second = sorted([fresh_number(), fresh_number()])
    for number in (first, second):
        await store_number(couch, kazoo_number(number, owner=owner.id))
    # Ten digits and 1+ten digits are the same E.164 numbers for KAZOO.
    doc = routing_trunk([npan(first), fresh_number()], ["1" + npan(second)])
    reply = await put_trunk(api, intruder, doc)
    data = assert_kazoo_error(reply, 403, "forbidden")
    # KAZOO prepends while folding over the (sorted) failures: descending order.
    assert data == {"message": f"unauthorized to use {second}, {first}"}


async def test_non_reconcilable_dids_are_ignored(api, couch, make_account, master):
    owner = await make_account("Owner", parent=master)
    intruder = await make_account("Intruder", parent=master)
    # "+1234" is no phone number for KAZOO's reconcile regex, even with a doc of that id.
    await store_number(couch, kazoo_number("+1234", owner=owner.id), copy=False)
    reply = await put_trunk(api, intruder, routing_trunk(["+1234", "911"]))
    assert reply.status == 201, reply.text


async def test_soft_deleted_number_docs_do_not_exist(api, couch, make_account, master):
    owner = await make_account("Owner", parent=master)
    intruder = await make_account("Intruder", parent=master)
    gone = fresh_number()
    await store_number(couch, kazoo_number(gone, owner=owner.id, pvt_deleted=True))
    await create_trunk(api, intruder, routing_trunk([gone]))
    left = await number_doc(couch, gone)
    assert left["pvt_deleted"] is True and "pvt_used_by" not in left


async def test_the_authenticated_account_is_checked_not_the_target(api, couch, reseller, customer):
    resellers = fresh_number()
    await store_number(couch, kazoo_number(resellers, owner=reseller.id))
    # The customer is refused the reseller's number in its own account…
    assert_kazoo_error(await put_trunk(api, customer, routing_trunk([resellers])), 403, "forbidden")
    # …but the reseller may put it there: the check uses the authenticated account.
    reply = await put_trunk(api, customer, routing_trunk([resellers]), token=reseller.token)
    assert reply.status == 201, reply.text
    # KAZOO assigns with the *target* account, which may not use it: left alone (§14 #13).
    assert "pvt_used_by" not in await number_doc(couch, resellers)


async def test_post_and_patch_are_checked_and_change_nothing_when_refused(
    api, couch, make_account, master
):
    owner = await make_account("Owner", parent=master)
    writer = await make_account("Writer", parent=master)
    taken = fresh_number()
    await store_number(couch, kazoo_number(taken, owner=owner.id))
    created = await create_trunk(api, writer, routing_trunk([fresh_number()]))
    item = writer.url(f"/{created.data['id']}")
    post = await call(api, "POST", item, data=routing_trunk([taken]), token=writer.token)
    assert_kazoo_error(post, 403, "forbidden")
    patch = {"servers": routing_trunk([taken])["servers"]}
    assert_kazoo_error(
        await call(api, "PATCH", item, data=patch, token=writer.token), 403, "forbidden"
    )
    after = await call(api, "GET", item, token=writer.token)
    assert after.body["revision"] == created.body["revision"]


async def test_schema_errors_win_over_ownership(api, couch, make_account, master):
    owner = await make_account("Owner", parent=master)
    writer = await make_account("Writer", parent=master)
    taken = fresh_number()
    await store_number(couch, kazoo_number(taken, owner=owner.id))
    doc = routing_trunk([taken])
    doc["servers"][0]["options"]["delay"] = "soon"
    data = assert_kazoo_error(await put_trunk(api, writer, doc), 400, "validation error")
    assert "servers.0.options.delay" in data


# -- §11.2 assignment ---------------------------------------------------------------------


async def test_put_assigns_in_the_number_db_and_the_account_copy(api, couch, customer):
    number = fresh_number()
    before = await store_number(couch, kazoo_number(number, owner=customer.id))
    assert (await put_trunk(api, customer, routing_trunk([npan(number)]))).status == 201
    stored = await number_doc(couch, number)
    assert stored["pvt_used_by"] == "trunkstore"
    assert "used_by" not in stored  # KAZOO never stores the public key
    assert stored["pvt_modified"] > before["pvt_modified"]
    # Everything else of the replicated KAZOO doc is kept.
    assert stored["pvt_authorizing_account"] == "system"
    assert stored["pvt_features"] == {"local": {}}
    copy = await copy_doc(couch, customer.id, number)
    assert copy is not None and copy["pvt_used_by"] == "trunkstore"
    assert {k: v for k, v in copy.items() if k != "_rev"} == {
        k: v for k, v in stored.items() if k != "_rev"
    }


async def test_post_and_patch_assign_added_and_release_removed(api, couch, customer):
    first, second, third = fresh_number(), fresh_number(), fresh_number()
    for number in (first, second, third):
        await store_number(couch, kazoo_number(number, owner=customer.id))
    created = await create_trunk(api, customer, routing_trunk([first]))
    item = customer.url(f"/{created.data['id']}")
    reply = await call(api, "POST", item, data=routing_trunk([second]), token=customer.token)
    assert reply.status == 200
    assert "pvt_used_by" not in await number_doc(couch, first)
    assert "pvt_used_by" not in await copy_doc(couch, customer.id, first)
    assert (await number_doc(couch, second))["pvt_used_by"] == "trunkstore"
    patch = {"servers": routing_trunk([second, third])["servers"]}
    reply = await call(api, "PATCH", item, data=patch, token=customer.token)
    assert reply.status == 200
    assert (await number_doc(couch, second))["pvt_used_by"] == "trunkstore"
    assert (await copy_doc(couch, customer.id, third))["pvt_used_by"] == "trunkstore"


@pytest.mark.parametrize("soft", [True, False])
async def test_delete_releases_every_number_of_the_doc(api, couch, customer, soft):
    first, second = fresh_number(), fresh_number()
    for number in (first, second):
        await store_number(couch, kazoo_number(number, owner=customer.id))
    created = await create_trunk(api, customer, routing_trunk([first], [second]))
    params = None if soft else {"should_soft_delete": "false"}
    reply = await call(
        api, "DELETE", customer.url(f"/{created.data['id']}"), token=customer.token, params=params
    )
    assert reply.status == 200
    for number in (first, second):
        assert "pvt_used_by" not in await number_doc(couch, number)
        assert "pvt_used_by" not in await copy_doc(couch, customer.id, number)


async def test_another_applications_use_is_not_ended_by_a_trunk(api, couch, customer):
    number = fresh_number()
    await store_number(couch, kazoo_number(number, owner=customer.id))
    created = await create_trunk(api, customer, routing_trunk([number]))
    # Meanwhile a callflow took the number over (KAZOO's assign_to_app overwrites).
    taken = await number_doc(couch, number)
    await store_number(couch, {**taken, "pvt_used_by": "callflow"}, copy=False)
    item = customer.url(f"/{created.data['id']}")
    reply = await call(api, "POST", item, data=routing_trunk([]), token=customer.token)
    assert reply.status == 200, reply.text
    assert reply.data["servers"][0]["DIDs"] == {}  # the trunk no longer routes it…
    assert (await number_doc(couch, number))["pvt_used_by"] == "callflow"  # …nor releases it


# -- uniqueness: a DID in one server of one doc per account -------------------------------


async def test_a_did_twice_in_one_document_is_a_400_with_its_path(api, customer):
    number = fresh_number()
    reply = await put_trunk(api, customer, routing_trunk([number], [npan(number)]))
    data = assert_kazoo_error(reply, 400, "validation error")
    path = f"servers.1.DIDs.{npan(number)}"
    assert data == {
        path: {
            "unique": {
                "message": f"DID {number} is already routed by servers.0.DIDs.{number} "
                "of this document",
                "value": number,
                "cause": f"servers.0.DIDs.{number}",
            }
        }
    }
    assert await listed_ids(api, customer) == []


async def test_dots_in_a_duplicate_did_key_are_escaped(api, customer):
    reply = await put_trunk(api, customer, routing_trunk(["+1.415"], ["+1.415"]))
    data = assert_kazoo_error(reply, 400, "validation error")
    assert list(data) == ["servers.1.DIDs.+1%2E415"]


async def test_a_did_of_another_live_document_is_a_400_naming_it(api, customer, make_account):
    number = fresh_number()
    first = await create_trunk(api, customer, routing_trunk([number]))
    reply = await put_trunk(api, customer, routing_trunk(["1" + npan(number)]))
    data = assert_kazoo_error(reply, 400, "validation error")
    unique = data[f"servers.0.DIDs.1{npan(number)}"]["unique"]
    assert unique["cause"] == first.data["id"] and unique["value"] == number
    # The document itself may be saved again with its own DIDs.
    item = customer.url(f"/{first.data['id']}")
    again = await call(api, "POST", item, data=routing_trunk([number]), token=customer.token)
    assert again.status == 200
    # Another account is not concerned, and a deleted doc frees the number.
    other = await make_account("Other")
    await create_trunk(api, other, routing_trunk([number]))
    deleted = await call(api, "DELETE", item, token=customer.token)
    assert deleted.status == 200, deleted.text
    again = await create_trunk(api, customer, routing_trunk([number]))
    # And a hard delete frees it just as well, for the very next write.
    params = {"should_soft_delete": "false"}
    item = customer.url(f"/{again.data['id']}")
    assert (await call(api, "DELETE", item, token=customer.token, params=params)).status == 200
    await create_trunk(api, customer, routing_trunk(["1" + npan(number)]))


async def test_only_the_dids_a_write_adds_are_checked_against_other_documents(api, couch, customer):
    kept, added = fresh_number(), fresh_number()
    first = await create_trunk(api, customer, routing_trunk([kept]))
    # A duplicate made outside the API (KAZOO checks nothing): another doc routes `kept`.
    second = await create_trunk(api, customer, routing_trunk([]))
    stored = await couch.get_doc(customer.db, second.data["id"])
    stored["servers"] = routing_trunk([kept, added])["servers"]
    await couch.put_doc(customer.db, stored)
    item = customer.url(f"/{first.data['id']}")

    # An edit that leaves `kept` where it is is not refused for someone else's duplicate…
    renamed = await call(api, "PATCH", item, data={"name": "renamed"}, token=customer.token)
    assert renamed.status == 200, renamed.text
    # …but one that brings in a number the other doc routes is.
    reply = await call(api, "POST", item, data=routing_trunk([kept], [added]), token=customer.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert list(data) == [f"servers.1.DIDs.{added}"]
    assert data[f"servers.1.DIDs.{added}"]["unique"]["cause"] == second.data["id"]


async def test_dids_past_the_first_lookup_batch_are_checked(api, couch, make_account, master):
    """The view is asked 100 spellings (20 DIDs) at a time: the 25th DID counts too."""
    account = await make_account("Many", parent=master)
    many = [fresh_number() for _ in range(25)]
    first = await create_trunk(api, account, routing_trunk([many[-1]]))
    reply = await put_trunk(api, account, routing_trunk([*many[:-1], "1" + npan(many[-1])]))
    data = assert_kazoo_error(reply, 400, "validation error")
    assert list(data) == [f"servers.0.DIDs.1{npan(many[-1])}"]
    assert data[f"servers.0.DIDs.1{npan(many[-1])}"]["unique"]["cause"] == first.data["id"]
    # Ownership too: another account's number at the end of a long list is refused.
    other = await make_account("Owner of the last", parent=master)
    theirs = fresh_number()
    await store_number(couch, kazoo_number(theirs, owner=other.id))
    reply = await put_trunk(api, account, routing_trunk([*many[:-1], theirs]))
    assert assert_kazoo_error(reply, 403, "forbidden") == {
        "message": f"unauthorized to use {theirs}"
    }
    assert await listed_ids(api, account) == [first.data["id"]]


async def test_a_number_database_created_during_other_writes_is_seen_at_once(
    api, couch, make_account, reseller
):
    """Which number databases exist is read once for many concurrent writes
    (numbers/number_dbs.py), yet a database that appeared before a write began counts."""
    alice = await make_account("Alice", parent=reseller)
    bob = await make_account("Bob", parent=reseller)
    busy = True

    async def keep_writing() -> int:
        writes = 0
        while busy:
            dids = [fresh_number(area) for area in ("415", "212", "646")]
            reply = await put_trunk(api, alice, routing_trunk(dids))
            assert reply.status == 201, reply.text
            writes += 1
        return writes

    writers = [asyncio.create_task(keep_writing()) for _ in range(4)]
    try:
        for _ in range(5):
            # A new area each round: its database does not exist until KAZOO writes it.
            theirs = fresh_number(str(random.randrange(200, 1000)))
            await store_number(couch, kazoo_number(theirs, owner=bob.id))
            reply = await put_trunk(api, alice, routing_trunk([fresh_number(), theirs]))
            assert assert_kazoo_error(reply, 403, "forbidden") == {
                "message": f"unauthorized to use {theirs}"
            }
    finally:
        busy = False
        written = await asyncio.gather(*writers)
    assert sum(written) > 0


async def test_a_trunk_with_thousands_of_dids_finds_the_few_number_docs_among_them(
    api, couch, make_account, reseller
):
    """Past 2,000 numbers in one number database holding far fewer docs, the database is
    read whole instead of looked up key by key (numbers/store.py): same verdicts."""
    alice = await make_account("Alice", parent=reseller)
    bob = await make_account("Bob", parent=reseller)
    area = str(random.randrange(200, 1000))
    dids = sorted({fresh_number(area) for _ in range(2_500)})
    own, bobs = dids[1_234], dids[-1]
    await store_number(couch, kazoo_number(own, owner=alice.id))
    await store_number(couch, kazoo_number(bobs, owner=bob.id))
    reply = await put_trunk(api, alice, routing_trunk(dids))
    assert assert_kazoo_error(reply, 403, "forbidden") == {"message": f"unauthorized to use {bobs}"}
    reply = await put_trunk(api, alice, routing_trunk(dids[:-1]))
    assert reply.status == 201, reply.text[:300]
    assert (await number_doc(couch, own))["pvt_used_by"] == "trunkstore"
