"""Claims in CouchDB only while another instance writes (service/numbers/instances.py,
docs/kazoo-compatibility.md §11.3).

An instance alone on its CouchDB claims numbers in memory only; one that arrives holds
its writes of numbers back until the first has seen it and claims too, so that racers
through both still add a number once; and the entry of an instance that died working
alone holds newcomers back only until its lease ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from helpers import assert_kazoo_error, create_trunk, put_trunk
from instances import instance
from number_helpers import fresh_number, routing_trunk

from service.couchdb.client import CouchClient, DocumentConflict, DocumentNotFound
from service.numbers.did_claims import CLAIMS_DB
from service.numbers.instances import ROSTER_ID

WRITERS = 8
BEAT = 0.05


async def _claimed(couch: CouchClient, account_id: str, number: str) -> bool:
    claim_id = f"{account_id}:{number}"
    return claim_id in await couch.get_docs(CLAIMS_DB, [claim_id])


async def _until_alone(api, couch: CouchClient, account) -> None:  # type: ignore[no-untyped-def]
    """Writes trunks until one of them leaves no claim in CouchDB: the instance is solo."""
    deadline = time.monotonic() + 10
    while True:
        number = fresh_number()
        await create_trunk(api, account, routing_trunk([number]))
        if not await _claimed(couch, account.id, number):
            return
        assert time.monotonic() < deadline, "the instance never noticed it was alone"
        await asyncio.sleep(BEAT)


async def _edit_roster(couch: CouchClient, change: Callable[[dict], object]) -> None:  # type: ignore[type-arg]
    """Reads the roster's entries, `change`s them and writes them back, again from the
    top when a live instance beat in between."""
    for _attempt in range(5):
        try:
            roster = await couch.get_doc(CLAIMS_DB, ROSTER_ID)
        except DocumentNotFound:
            roster = {"_id": ROSTER_ID, "instances": {}}
        change(roster.setdefault("instances", {}))
        try:
            await couch.put_doc(CLAIMS_DB, roster)
            return
        except DocumentConflict:
            continue
    raise AssertionError("the roster kept changing under the test")


async def _leave_entry(couch: CouchClient, instance_id: str, entry: dict) -> None:  # type: ignore[type-arg]
    """Puts an entry into the roster as an instance killed mid-beat leaves it."""
    await _edit_roster(couch, lambda entries: entries.update({instance_id: entry}))


async def _drop_entry(couch: CouchClient, instance_id: str) -> None:
    """Takes an entry `_leave_entry` put there out again, if it is still there."""
    await _edit_roster(couch, lambda entries: entries.pop(instance_id, None))


async def _roster(couch: CouchClient) -> dict:  # type: ignore[type-arg]
    try:
        return dict((await couch.get_doc(CLAIMS_DB, ROSTER_ID)).get("instances", {}))
    except DocumentNotFound:
        return {}


async def test_a_lone_instance_claims_nothing_and_a_newcomer_is_let_in_step(
    couch_url, couch: CouchClient, make_account
):
    """Three times: the first instance works alone (no claim docs), a second one starts,
    and at once eight writers of one new number through both get one 201."""
    settings = {"instance_beat_seconds": BEAT, "did_claim_seconds": 1.0}
    async with instance(couch_url, **settings) as one:
        account = await make_account("Alone, then not")
        for _round in range(3):
            await _until_alone(one, couch, account)
            entries = set(await _roster(couch))
            async with instance(couch_url, **settings) as two:
                number = fresh_number()
                replies = await asyncio.gather(
                    *(
                        put_trunk(
                            (one, two)[n % 2], account, routing_trunk([number], name=f"racer {n}")
                        )
                        for n in range(WRITERS)
                    )
                )
                created = [reply for reply in replies if reply.status == 201]
                assert len(created) == 1, sorted(reply.status for reply in replies)
                for reply in replies:
                    if reply is not created[0]:
                        data = assert_kazoo_error(reply, 400, "validation error")
                        cause = data[f"servers.0.DIDs.{number}"]["unique"]["cause"]
                        assert cause == created[0].data["id"]
                # Both write claims now.
                later = fresh_number()
                await create_trunk(one, account, routing_trunk([later]))
                assert await _claimed(couch, account.id, later)
                assert len(set(await _roster(couch)) - entries) == 1  # the second's entry
            # The second said goodbye: its entry is gone.
            assert set(await _roster(couch)) <= entries


async def test_an_instance_that_died_alone_holds_newcomers_back_until_its_lease_ends(
    couch_url, couch: CouchClient, make_account
):
    # Exactly what an instance killed while working alone leaves: its entry, saying it
    # does not claim, whose counter never moves again.
    await _leave_entry(couch, "died-alone", {"beat": 41, "claiming": False})
    account = await make_account("After a crash")

    claim_seconds = 0.6  # lease: 0.6 s + 3 beats
    settings = {"instance_beat_seconds": BEAT, "did_claim_seconds": claim_seconds}
    # From before the newcomer starts: its lease of the dead entry runs from its first
    # beat, and anything slow meanwhile (making an account on a busy CouchDB) counts.
    started = time.monotonic()
    try:
        async with instance(couch_url, **settings) as api:
            await create_trunk(api, account, routing_trunk([fresh_number()]))
            # Held back until the dead entry's lease ended, then let through.
            assert time.monotonic() - started >= claim_seconds
            deadline = time.monotonic() + 10
            while "died-alone" in await _roster(couch):
                assert time.monotonic() < deadline, "the dead instance's entry was never dropped"
                await asyncio.sleep(BEAT)
    finally:
        await _drop_entry(couch, "died-alone")


async def test_a_dead_instance_that_claimed_holds_nobody_back(
    couch_url, couch: CouchClient, make_account
):
    await _leave_entry(couch, "died-claiming", {"beat": 12, "claiming": True})
    settings = {"instance_beat_seconds": BEAT, "did_claim_seconds": 30}
    try:
        async with instance(couch_url, **settings) as api:
            account = await make_account("Claimed to the end")
            started = time.monotonic()
            number = fresh_number()
            await create_trunk(api, account, routing_trunk([number]))
            # Far below its 30 s lease: whatever it had in flight was claimed.
            assert time.monotonic() - started < 3
            assert await _claimed(couch, account.id, number)
    finally:
        # Left behind, its 30 s lease would hold back the instances of later tests.
        await _drop_entry(couch, "died-claiming")
