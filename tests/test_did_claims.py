"""One DID, one trunk per account, across every instance sharing a CouchDB
(service/numbers/did_claims.py, docs/kazoo-compatibility.md §11.3).

Each instance checks a write's new numbers against what is stored; claims in CouchDB
make the second of two racing writers through different instances lose; the claim of a
saved write ends with the next revision of its doc, and one left by an instance that
died between its check and its save blocks the number for at most
CONNECTIVITY_DID_CLAIM_SECONDS.
"""

from __future__ import annotations

import asyncio
import time

from faultproxy import FaultProxy
from helpers import assert_kazoo_error, call, create_trunk, put_trunk
from instances import instance
from number_helpers import fresh_number, npan, routing_trunk

from service.couchdb.client import CouchClient
from service.numbers.did_claims import CLAIMS_DB, ClaimingWrite, DidClaims

WRITERS = 8


async def _race(apis, account, number):  # type: ignore[no-untyped-def]
    """WRITERS concurrent PUTs of a trunk routing `number`, alternating instances."""
    return await asyncio.gather(
        *(
            put_trunk(apis[n % len(apis)], account, routing_trunk([number], name=f"racer {n}"))
            for n in range(WRITERS)
        )
    )


async def test_racing_writers_through_two_instances_add_a_number_once(couch_url, make_account):
    async with (
        instance(couch_url, did_claims=True) as one,
        instance(couch_url, did_claims=True) as two,
    ):
        account = await make_account("Two instances")
        for _round in range(3):
            number = fresh_number()
            replies = await _race((one, two), account, number)
            created = [reply for reply in replies if reply.status == 201]
            assert len(created) == 1, sorted(reply.status for reply in replies)
            winner = created[0].data["id"]
            for reply in replies:
                if reply is created[0]:
                    continue
                data = assert_kazoo_error(reply, 400, "validation error")
                assert data[f"servers.0.DIDs.{number}"]["unique"]["cause"] == winner


async def test_a_foreign_doc_written_just_before_refuses_every_racer(
    couch_url, couch: CouchClient, make_account
):
    async with (
        instance(couch_url, did_claims=True) as one,
        instance(couch_url, did_claims=True) as two,
    ):
        account = await make_account("Foreign first")
        await create_trunk(one, account, routing_trunk([fresh_number()]))
        await create_trunk(two, account, routing_trunk([fresh_number()]))
        number = fresh_number()
        # What KAZOO's own Crossbar would store: no claim, straight into CouchDB.
        foreign = {
            "_id": "foreign-" + number[1:],
            "pvt_type": "sys_info",
            **routing_trunk([npan(number)]),
        }
        await couch.put_doc(account.db, foreign)
        replies = await _race((one, two), account, number)
        for reply in replies:
            data = assert_kazoo_error(reply, 400, "validation error")
            assert data[f"servers.0.DIDs.{number}"]["unique"]["cause"] == foreign["_id"]


async def test_a_claim_left_by_a_dead_instance_blocks_only_until_it_expires(
    couch_url, couch: CouchClient, make_account
):
    expiry = 1.5
    async with instance(couch_url, did_claims=True, did_claim_seconds=expiry) as api:
        account = await make_account("Crashed writer")
        number = fresh_number()
        # Exactly what an instance killed between its check and its save leaves behind:
        # the claim, never released, and no doc.
        dead = DidClaims(couch, expiry=expiry)
        await dead.ensure_database()
        dead_write = ClaimingWrite(account.db, "doc-of-the-dead-instance", None)
        left = await dead.claim(account.id, dead_write, {number})
        claimed_at = time.time()
        assert left.mine and not left.held

        # A write of the number waits for the claim's writer; that one never comes
        # back, so the write goes through once the claim has expired, not before.
        waited = await create_trunk(api, account, routing_trunk([number]))
        assert time.time() - claimed_at >= expiry
        # The number is routed once, by the write that took the claim over.
        again = await put_trunk(api, account, routing_trunk([number]))
        cause = assert_kazoo_error(again, 400, "validation error")[f"servers.0.DIDs.{number}"]
        assert cause["unique"]["cause"] == waited.data["id"]


async def test_a_claim_of_a_writer_still_at_work_is_named_after_the_wait(
    couch_url, couch: CouchClient, make_account, monkeypatch
):
    from service.numbers import did_guard

    monkeypatch.setattr(did_guard, "_RIVAL_WAIT_SECONDS", 0.3)
    async with instance(couch_url, did_claims=True, did_claim_seconds=60) as api:
        account = await make_account("Slow writer")
        number = fresh_number()
        slow = DidClaims(couch, expiry=60)
        await slow.ensure_database()
        await slow.claim(account.id, ClaimingWrite(account.db, "doc-being-written", None), {number})
        reply = await put_trunk(api, account, routing_trunk([number]))
        data = assert_kazoo_error(reply, 400, "validation error")
        assert data[f"servers.0.DIDs.{number}"]["unique"]["cause"] == "doc-being-written"


async def test_a_number_a_saved_trunk_dropped_is_free_at_once_through_another_instance(
    couch_url, couch: CouchClient, make_account
):
    """A saved write's claim stays in CouchDB (deleting it would cost a commit per
    number), yet it holds nothing: once the trunk no longer routes the number, another
    instance adds it without waiting for the claim to expire."""
    async with (
        instance(couch_url, did_claims=True, did_claim_seconds=60) as one,
        instance(couch_url, did_claims=True, did_claim_seconds=60) as two,
    ):
        account = await make_account("Dropped then taken")
        number = fresh_number()
        first = await create_trunk(one, account, routing_trunk([number]))
        claim_id = f"{account.id}:{number}"
        kept = await couch.get_docs(CLAIMS_DB, [claim_id])
        assert kept[claim_id]["connectivity_id"] == first.data["id"]

        # Still routed: the claim is taken over and the lookup names the trunk.
        refused = await put_trunk(two, account, routing_trunk([number]))
        cause = assert_kazoo_error(refused, 400, "validation error")[f"servers.0.DIDs.{number}"]
        assert cause["unique"]["cause"] == first.data["id"]

        url = account.url("/" + first.data["id"])
        replaced = await call(
            one, "POST", url, data=routing_trunk([fresh_number()]), token=account.token
        )
        assert replaced.status == 200, replaced.text
        started = time.monotonic()
        second = await create_trunk(two, account, routing_trunk([number]))
        # Far below the 60 s expiry, and below the 5 s a rival in flight is waited for.
        assert time.monotonic() - started < 3
        taken = await couch.get_docs(CLAIMS_DB, [claim_id])
        assert taken[claim_id]["connectivity_id"] == second.data["id"]

        # Deleted (soft, as KAZOO does) frees it too.
        deleted = await call(
            one, "DELETE", account.url("/" + second.data["id"]), token=account.token
        )
        assert deleted.status == 200, deleted.text
        started = time.monotonic()
        await create_trunk(one, account, routing_trunk([number]))
        assert time.monotonic() - started < 3


async def test_the_claims_of_a_refused_write_are_deleted(
    couch_url, couch: CouchClient, make_account
):
    async with (
        instance(couch_url, did_claims=True, did_claim_seconds=60) as one,
        instance(couch_url, did_claims=True, did_claim_seconds=60) as two,
    ):
        account = await make_account("Refused write")
        routed, free = fresh_number(), fresh_number()
        owner = await create_trunk(one, account, routing_trunk([routed]))
        refused = await put_trunk(two, account, routing_trunk([routed, free]))
        cause = assert_kazoo_error(refused, 400, "validation error")[f"servers.0.DIDs.{routed}"]
        assert cause["unique"]["cause"] == owner.data["id"]
        # The refused write's claim of `free` goes: the next writer does not wait for it
        # (a claim still held would keep it waiting 5 s, then refuse it).
        started = time.monotonic()
        await create_trunk(one, account, routing_trunk([free]))
        assert time.monotonic() - started < 3
        claim_id = f"{account.id}:{free}"
        assert (await couch.get_docs(CLAIMS_DB, [claim_id]))[claim_id]["base_rev"] is None


async def test_the_embedded_server_needs_no_claims(make_account):
    from service.config import Settings

    assert not Settings().claims_dids
    assert Settings(couch_url="http://couch.example:5984").claims_dids
    assert not Settings(couch_url="http://couch.example:5984", did_claims=False).claims_dids


async def test_a_claim_over_a_released_one_looks_again_after_claiming(
    couch_url, proxy: FaultProxy, make_account
):
    """The lookup that runs beside a claim is only trusted for a number never claimed
    before: here another instance claims, saves and releases the number between that
    lookup and this write's claim, and the write must still find the saved doc."""
    async with (
        instance(couch_url, did_claims=True) as one,
        instance(proxy.url, did_claims=True) as two,
    ):
        account = await make_account("Claimed twice")
        await create_trunk(two, account, routing_trunk([fresh_number()]))  # index read
        number = fresh_number()
        held = proxy.inject(
            "delay_request", method="POST", path_contains=CLAIMS_DB, hold_until=asyncio.Event()
        )
        try:
            late = asyncio.ensure_future(put_trunk(two, account, routing_trunk([number])))
            while not held.hits:
                await asyncio.sleep(0.01)
            # Meanwhile, through the other instance: claimed and saved.
            first = await create_trunk(one, account, routing_trunk([number]))
        finally:
            assert held.hold_until is not None
            held.hold_until.set()
            proxy.clear()
        data = assert_kazoo_error(await late, 400, "validation error")
        assert data[f"servers.0.DIDs.{number}"]["unique"]["cause"] == first.data["id"]
