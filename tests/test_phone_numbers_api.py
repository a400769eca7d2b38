"""`/v2/accounts/{ACCOUNT_ID}/phone_numbers[/{NUMBER}]`: KAZOO's number endpoints (subset)."""

from __future__ import annotations

import pytest
from helpers import assert_kazoo_error, call
from number_helpers import (
    copy_doc,
    fresh_number,
    kazoo_number,
    npan,
    number_doc,
    numbers_url,
    routing_trunk,
    store_number,
)

from service.couchdb.client import DocumentNotFound
from service.kazoo.ids import ACCOUNTS_DB, account_db


async def allow_additions(couch, account):
    """KAZOO's `pvt_wnm_allow_additions`, set by a superduper admin on the account doc."""
    for db in (account_db(account.id), ACCOUNTS_DB):
        doc = await couch.get_doc(db, account.id)
        doc["pvt_wnm_allow_additions"] = True
        await couch.put_doc(db, doc)


async def test_put_creates_a_kazoo_shaped_number_for_the_account(api, couch, master, customer):
    number = fresh_number()
    reply = await call(
        api,
        "PUT",
        numbers_url(customer.id, number),
        data={"my_own_field": {"a": 1}},
        token=master.token,
    )
    assert reply.status == 201, reply.text
    assert "Location" not in reply.headers
    assert reply.data["id"] == number and reply.data["state"] == "in_service"
    assert reply.data["features"] == ["local"] and reply.data["my_own_field"] == {"a": 1}
    assert reply.data["_read_only"]["carrier_module"] == "local"
    stored = await number_doc(couch, number)
    assert reply.body["revision"] == stored["_rev"]
    assert {
        k: v for k, v in stored.items() if k not in ("_rev", "pvt_created", "pvt_modified")
    } == {
        "_id": number,
        "pvt_type": "number",
        "pvt_db_name": "numbers%2F%2B1415",
        "pvt_module_name": "knm_local",
        "pvt_ported_in": False,
        "pvt_state": "in_service",
        "pvt_assigned_to": customer.id,
        "pvt_features": {"local": {}},
        "my_own_field": {"a": 1},
    }
    assert stored["pvt_created"] == stored["pvt_modified"] > 63_000_000_000  # gregorian
    copy = await copy_doc(couch, customer.id, number)
    assert copy is not None
    assert {k: v for k, v in copy.items() if k != "_rev"} == {
        k: v for k, v in stored.items() if k != "_rev"
    }


async def test_who_may_create_numbers_in_which_state(api, couch, reseller, customer):
    number = fresh_number()
    url = numbers_url(customer.id, number)
    # Neither superduper nor allowed to add numbers (knm_lib:allowed_creation_states/2).
    reply = await call(api, "PUT", url, token=customer.token)
    assert assert_kazoo_error(reply, 403, "forbidden") == {
        "code": 403,
        "error": "forbidden",
        "cause": "creating number in state 'in_service' is not allowed",
        "message": "requestor is unauthorized to perform operation",
    }
    await allow_additions(couch, reseller)
    reply = await call(
        api, "PUT", url, data={"create_with_state": "available"}, token=reseller.token
    )
    assert_kazoo_error(reply, 403, "forbidden")
    reply = await call(
        api, "PUT", url, data={"create_with_state": "reserved"}, token=reseller.token
    )
    assert reply.status == 201 and reply.data["state"] == "reserved"
    stored = await number_doc(couch, number)
    assert stored["pvt_reserve_history"] == [customer.id]
    # It exists now, in a state nobody may create it from again.
    again = await call(api, "PUT", url, token=reseller.token)
    assert assert_kazoo_error(again, 409, "number_exists")["cause"] == number


async def test_create_errors(api, master, customer):
    url = numbers_url(customer.id, "+1234")
    data = assert_kazoo_error(
        await call(api, "PUT", url, token=master.token), 404, "not_reconcilable"
    )
    assert data["message"] == "number +1234 is not reconcilable"
    bad_state = await call(
        api,
        "PUT",
        numbers_url(customer.id, fresh_number()),
        data={"create_with_state": "x"},
        token=master.token,
    )
    assert "create_with_state" in assert_kazoo_error(bad_state, 400, "validation error")
    post = await call(api, "POST", numbers_url(customer.id, fresh_number()), token=master.token)
    assert_kazoo_error(post, 405, "invalid_method")


async def test_an_available_number_is_taken_over(api, couch, master, customer):
    number = fresh_number()
    await store_number(couch, kazoo_number(number, owner=None, state="available"))
    reply = await call(api, "PUT", numbers_url(customer.id, npan(number)), token=master.token)
    assert reply.status == 201, reply.text
    stored = await number_doc(couch, number)
    assert stored["pvt_state"] == "in_service" and stored["pvt_assigned_to"] == customer.id
    # A soft-deleted number doc does not exist for KAZOO: it is simply replaced.
    gone = fresh_number()
    await store_number(couch, kazoo_number(gone, owner=master.id, pvt_deleted=True))
    reply = await call(api, "PUT", numbers_url(customer.id, gone), token=master.token)
    assert reply.status == 201, reply.text
    replaced = await number_doc(couch, gone)
    assert "pvt_deleted" not in replaced and replaced["pvt_assigned_to"] == customer.id


async def test_listing_shows_the_accounts_numbers_with_used_by(api, couch, master, customer):
    empty = await call(api, "GET", numbers_url(customer.id), token=customer.token)
    assert empty.data == {"numbers": {}, "cascade_quantity": 0}
    first, second = sorted([fresh_number(), fresh_number()])
    for number in (first, second):
        created = await call(api, "PUT", numbers_url(customer.id, number), token=master.token)
        assert created.status == 201
    await call(api, "PUT", customer.url(), data=routing_trunk([first]), token=customer.token)
    reply = await call(api, "GET", numbers_url(customer.id), token=customer.token)
    assert reply.status == 200
    numbers = reply.data["numbers"]
    assert set(numbers) == {first, second}
    assert numbers[first]["used_by"] == "trunkstore" and "used_by" not in numbers[second]
    assert numbers[second]["state"] == "in_service"
    assert numbers[second]["assigned_to"] == customer.id
    assert numbers[second]["features"] == ["local"]
    assert "pvt_module_name" not in numbers[second]
    page = await call(
        api, "GET", numbers_url(customer.id), token=customer.token, params={"page_size": "1"}
    )
    assert list(page.data["numbers"]) == [second]  # descending, like every Crossbar listing
    assert page.body["page_size"] == 1 and "next_start_key" in page.body


async def test_access_rules(api, couch, make_account, master, reseller):
    alice = await make_account("Alice", parent=reseller)
    bob = await make_account("Bob", parent=reseller)
    allowed = [(alice, alice), (reseller, alice), (master, alice)]
    denied = [(bob, alice), (alice, reseller)]  # sibling; descendant on its ancestor
    for actor, target in allowed:
        reply = await call(api, "GET", numbers_url(target.id), token=actor.token)
        assert reply.status == 200, (actor.name, target.name)
    for actor, target in denied:
        for method, url in (
            ("GET", numbers_url(target.id)),
            ("PUT", numbers_url(target.id, fresh_number())),
            ("DELETE", numbers_url(target.id, fresh_number())),
        ):
            reply = await call(api, method, url, token=actor.token)
            assert_kazoo_error(reply, 403, "forbidden")
    no_token = await call(api, "GET", numbers_url(alice.id))
    assert_kazoo_error(no_token, 401, "invalid_credentials")


async def test_reading_and_removing_other_peoples_numbers(api, couch, make_account, reseller):
    alice = await make_account("Alice", parent=reseller)
    bob = await make_account("Bob", parent=reseller)
    bobs = fresh_number()
    await store_number(couch, kazoo_number(bobs, owner=bob.id))
    # Through her own account path, Alice still may not see or release Bob's number.
    hidden = await call(api, "GET", numbers_url(alice.id, bobs), token=alice.token)
    assert assert_kazoo_error(hidden, 404, "bad_identifier") == {
        "message": "bad identifier",
        "not_found": "The number could not be found",
    }
    refused = await call(api, "DELETE", numbers_url(alice.id, bobs), token=alice.token)
    assert_kazoo_error(refused, 403, "forbidden")
    assert (await number_doc(couch, bobs))["pvt_assigned_to"] == bob.id
    # Bob and his reseller may.
    mine = await call(api, "GET", numbers_url(bob.id, bobs), token=bob.token)
    assert mine.status == 200 and mine.data["id"] == bobs
    theirs = await call(api, "GET", numbers_url(bob.id, bobs), token=reseller.token)
    assert theirs.status == 200


async def test_delete_releases_local_numbers_for_good(api, couch, master, customer):
    number = fresh_number()
    await call(api, "PUT", numbers_url(customer.id, number), token=master.token)
    reply = await call(api, "DELETE", numbers_url(customer.id, number), token=customer.token)
    assert reply.status == 200, reply.text
    assert reply.data["id"] == number and reply.data["_read_only"]["state"] == "deleted"
    for read in (number_doc(couch, number), couch.get_doc(customer.db, number)):
        try:
            await read
            raise AssertionError("the number should be gone")
        except DocumentNotFound:
            pass
    listing = await call(api, "GET", numbers_url(customer.id), token=customer.token)
    assert listing.data["numbers"] == {}
    missing = await call(api, "DELETE", numbers_url(customer.id, number), token=customer.token)
    assert_kazoo_error(missing, 404, "bad_identifier")


async def test_delete_of_a_carrier_number_makes_it_available(api, couch, customer, reseller):
    number, reserved = fresh_number(), fresh_number()
    await store_number(couch, kazoo_number(number, owner=customer.id, module="knm_bandwidth2"))
    # Reserved by the reseller, then handed on to the customer: released back to the reseller.
    await store_number(
        couch,
        kazoo_number(
            reserved,
            owner=customer.id,
            state="reserved",
            pvt_reserve_history=[customer.id, reseller.id],
        ),
    )
    reply = await call(api, "DELETE", numbers_url(customer.id, number), token=customer.token)
    assert reply.status == 200 and reply.data["state"] == "available"
    stored = await number_doc(couch, number)
    assert "pvt_assigned_to" not in stored
    assert stored["pvt_previously_assigned_to"] == customer.id
    assert await copy_doc(couch, customer.id, number) is None
    reply = await call(api, "DELETE", numbers_url(customer.id, reserved), token=customer.token)
    assert reply.status == 200 and reply.data["state"] == "reserved"
    stored = await number_doc(couch, reserved)
    assert stored["pvt_assigned_to"] == reseller.id
    assert await copy_doc(couch, reseller.id, reserved) is not None
    assert await copy_doc(couch, customer.id, reserved) is None


async def test_hard_delete_is_for_superduper_admins(api, couch, master, customer):
    kept, gone = fresh_number(), fresh_number()
    for number in (kept, gone):
        await store_number(couch, kazoo_number(number, owner=customer.id, module="knm_bandwidth2"))
    # Asked by the owner, `hard` is not heard: a carrier number is only released.
    hard = {"hard": "true"}
    released = await call(
        api, "DELETE", numbers_url(customer.id, kept), token=customer.token, params=hard
    )
    assert released.status == 200 and released.data["state"] == "available"
    assert "pvt_assigned_to" not in await number_doc(couch, kept)
    # Asked by a superduper admin, the number is deleted outright, copy and all.
    reply = await call(
        api, "DELETE", numbers_url(customer.id, gone), token=master.token, params=hard
    )
    assert reply.status == 200 and reply.data["_read_only"]["state"] == "deleted"
    with pytest.raises(DocumentNotFound):
        await number_doc(couch, gone)
    assert await copy_doc(couch, customer.id, gone) is None


async def test_a_number_too_short_for_a_database_is_not_reconcilable(api, master):
    reply = await call(api, "PUT", numbers_url(master.id, "00"), data={}, token=master.token)
    assert assert_kazoo_error(reply, 404, "not_reconcilable") == {
        "code": 404,
        "error": "not_reconcilable",
        "message": "number 00 is not reconcilable",
        "cause": "00",
    }
