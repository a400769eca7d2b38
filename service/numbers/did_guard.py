"""What a connectivity write does with its DIDs: checked before saving, assigned after.

Before the save (after schema validation, §1 step 8): no DID twice in the
account (ours, see `dids`), then KAZOO's ownership check (§11.1) with the
*authenticated* account. After a successful save: numbers that appeared get
`pvt_used_by: "trunkstore"`, numbers that disappeared lose it (§11.2). Unlike KAZOO
(§14 #4), a PUT assigns its numbers too.

A number a write adds is claimed, from its check until its save is answered: in memory,
so that two writes through this instance cannot both add it, and, when several
instances share the CouchDB, in CouchDB too (numbers/did_claims.py; there a saved
write's claim stays until the next writer of the number finds it over). Only then is it
looked up among the stored docs: in the account's in-memory index, brought up to date
first (numbers/did_index.py), or, for an account not indexed, in `trunkstore/lookup_did`.
Claiming first means a rival either claimed before us (refused here) or will find our
claim (refused there); stored docs, including KAZOO's and replicated ones, are seen by
the lookup. docs/kazoo-compatibility.md §11.3.

The lookup's reads may start as the request arrives (`read_ahead`), side by side with
the account and token checks: a read begun then sees every write acknowledged before the
request, and this instance's own saves are in the index as they land. Only after waiting
for a rival must the lookup start after the wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from service import timing
from service.couchdb.client import CouchClient, CouchError, DatabaseNotFound, DocumentNotFound
from service.couchdb.design_docs import ensure_design_docs
from service.kazoo import errors
from service.kazoo.documents import WriteContext
from service.kazoo.ids import account_id_from_db
from service.numbers.did_claims import ClaimingWrite, DidClaims
from service.numbers.did_index import DidIndex
from service.numbers.dids import (
    as_validation_errors,
    dids_of,
    duplicates_against,
    duplicates_within,
    numbers_of,
)
from service.numbers.docs import STATE_AVAILABLE, TRUNKSTORE, assigned_to, state_of
from service.numbers.instances import InstanceRoster
from service.numbers.parties import Parties
from service.numbers.rules import normalize, number_db, raw_spellings
from service.numbers.store import NumberStore
from service.numbers.usage import NumberUsage
from service.stores.accounts import AccountStore

Json = dict[str, Any]

# Keys per lookup_did query: a GET's URL stays well under any server's limit.
_KEYS_PER_QUERY = 100
# Number docs updated at once after a write.
_PARALLEL_UPDATES = 8

# How long a write waits for a rival adding the same number to finish, and the pauses
# between looks at a rival's claim in CouchDB (another instance's write).
_RIVAL_WAIT_SECONDS = 5.0
_FIRST_PAUSE_SECONDS = 0.005
_LAST_PAUSE_SECONDS = 0.2

log = logging.getLogger(__name__)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Marks a side-by-side lookup's failure as seen: the sequential lookup reports it."""
    if not task.cancelled():
        task.exception()


async def _until_any(events: list[asyncio.Event], deadline: float) -> bool:
    """Waits for one of `events` until `deadline`; whether one came."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(
            waits, timeout=max(0.0, deadline - time.monotonic()), return_when="FIRST_COMPLETED"
        )
    finally:
        for wait in waits:
            wait.cancel()
    return bool(done)


class DidGuard:
    def __init__(
        self,
        client: CouchClient,
        accounts: AccountStore,
        numbers: NumberStore,
        index: DidIndex | None = None,
        claims: DidClaims | None = None,
        roster: InstanceRoster | None = None,
    ) -> None:
        self.client = client
        self.accounts = accounts
        self.numbers = numbers
        self.usage = NumberUsage(numbers)
        # Answers the uniqueness check from memory once built; the view otherwise.
        self.index = index
        # None: this instance is the only one writing to its CouchDB (the embedded server).
        self.claims = claims
        # With claims: whether another instance writes now (numbers/instances.py); None:
        # always claim in CouchDB.
        self.roster = roster
        # The tasks of writes checked solo (claimed in memory only), until they end.
        self._solo_tasks: set[asyncio.Task[Any]] = set()
        # db -> E.164 number -> id of the doc whose write of it is in flight here.
        self._claimed_here: dict[str, dict[str, str]] = {}
        # (db, doc id) -> set when its write in flight here is over (saved or not).
        self._done: dict[tuple[str, str], asyncio.Event] = {}
        # (db, doc id) -> the CouchDB claims of its write in flight.
        self._claimed_in_couch: dict[tuple[str, str], dict[str, str]] = {}

    # -- before the save ---------------------------------------------------------------

    async def check(
        self, db: str, doc: Json, ctx: WriteContext, before: Json | None = None
    ) -> dict[str, Json]:
        """400 for a duplicate DID, then 403 for numbers the caller may not use.

        `before`: the stored doc an update replaces. Returns the number docs it read
        (E.164 -> doc), so that `track` after the save need not read them again.
        From a passed check until `stored` or `abandoned`, the doc's new numbers are
        claimed.
        """
        numbers = numbers_of(doc)
        arrived = timing.arrived_at()
        # The ownership read goes side by side with the uniqueness check.
        reading = asyncio.ensure_future(self._number_docs(numbers, arrived))
        try:
            with timing.step("dids"):
                await self.check_unique(db, doc, before, arrived=arrived)
            docs = await reading
            if ctx.auth_account_id is not None:
                with timing.step("ownership"):
                    await self.check_ownership(doc, ctx.auth_account_id, docs)
        except BaseException:
            reading.cancel()
            self._release(db, str(doc["_id"]))
            self._solo_ended()
            raise
        if self.index is not None:
            self.index.flying(db)
        return docs

    async def _number_docs(self, numbers: set[str], arrived: float | None) -> dict[str, Json]:
        if not numbers:
            return {}
        with timing.step("ownership"):
            return await self.numbers.get_many(numbers, not_before=arrived)

    def read_ahead(self, db: str, data: Json) -> None:
        """Starts what a check of `data` (a request's body, not yet validated) will read:
        the account's DID index and, for numbers in several number databases, their
        listing. Called as the request arrives, before its account and token are checked;
        the reads only serve checks that come after (`check`)."""
        if self.index is not None:
            self.index.read_ahead(db)
        if len({number_db(number) for number in numbers_of(data)} - {None}) > 1:
            self.numbers.number_dbs.read_ahead()

    def read_ahead_owners(self) -> None:
        """Starts the number-database listing for a check of numbers not known yet (a
        PATCH keeps the stored doc's): it serves the checks that come after."""
        self.numbers.number_dbs.read_ahead()

    def stored(self, db: str, doc_id: str, doc: Json | None) -> None:
        """The write of `doc_id` succeeded: `doc` is stored (a tombstone, or None, when
        it was removed for good)."""
        if self.index is not None:
            self.index.landed(db, doc_id, doc)
        # Its CouchDB claims stay: the doc's new revision is what ends them (did_claims.py).
        self._release(db, doc_id, landed=True)
        self._solo_ended()

    def abandoned(self, db: str, doc_id: str) -> None:
        """The write of `doc_id` did not happen (or its outcome is unknown)."""
        if self.index is not None:
            self.index.lost(db)
        self._release(db, doc_id)
        self._solo_ended()

    def _release(self, db: str, doc_id: str, *, landed: bool = False) -> None:
        done = self._done.pop((db, doc_id), None)
        if done is not None:
            done.set()
        here = self._claimed_here.get(db)
        if here is not None:
            for number in [n for n, owner in here.items() if owner == doc_id]:
                del here[number]
            if not here:
                del self._claimed_here[db]
        in_couch = self._claimed_in_couch.pop((db, doc_id), None)
        if in_couch and self.claims is not None and not landed:
            self.claims.release(in_couch)

    async def check_unique(
        self, db: str, doc: Json, before: Json | None = None, *, arrived: float | None = None
    ) -> None:
        """Only DIDs the write adds are looked up in other docs: a number the stored doc
        already routes was checked when it came in, and an edit that does not touch it
        is not refused for a duplicate someone else made since (KAZOO checks nothing).
        It also spares the lookup — the dearest part of a write — for most updates.
        `arrived`: when the request arrived (time.monotonic); None: now.
        """
        dids = dids_of(doc)
        doc_id = str(doc["_id"])
        added = {did.e164 for did in dids} - {did.e164 for did in dids_of(before)}
        within = as_validation_errors(duplicates_within(dids))
        if within:
            # Refused anyway: nothing is claimed, the answer lists every duplicate.
            taken = await self._routed_elsewhere(db, doc_id, added, arrived) if added else {}
            found = as_validation_errors(duplicates_against(dids, taken))
            raise errors.validation_error({**found, **within})
        if not added:
            return
        base_rev = before.get("_rev") if before is not None else None
        write = ClaimingWrite(db, doc_id, base_rev if isinstance(base_rev, str) else None)
        in_couch = self.claims is not None and not self._goes_solo()
        # With claims in CouchDB, the lookup starts side by side with the claim, and is
        # kept when the claim shows that no write can have saved these numbers since.
        # Only if every other instance claims too from before the lookup begins: one
        # still working solo may save the number unclaimed meanwhile.
        early = None
        if in_couch and (self.roster is None or self.roster.in_step()):
            early = asyncio.ensure_future(self._routed_elsewhere(db, doc_id, added, arrived))
            early.add_done_callback(_retrieved)
        try:
            taken, early_is_enough, waited = await self._claim(write, added, in_couch=in_couch)
            if not taken:
                if early is not None and early_is_enough:
                    taken = await early
                else:
                    # A rival of this instance that was saved is in the index already;
                    # one of another instance, or one waited for, may have saved since
                    # the request arrived: then only a read begun now can tell.
                    since = arrived if not in_couch and not waited else None
                    taken = await self._routed_elsewhere(db, doc_id, added, since)
        finally:
            if early is not None:
                early.cancel()
        if taken:
            self._release(db, doc_id)
            raise errors.validation_error(as_validation_errors(duplicates_against(dids, taken)))

    async def _claim(
        self, write: ClaimingWrite, added: set[str], *, in_couch: bool
    ) -> tuple[dict[str, str], bool, bool]:
        """Claims `added` for the write, here and (`in_couch`: another instance may be
        adding numbers too) in CouchDB.

        A number another write is adding right now is waited for, not refused at once:
        if that write is saved, the lookup after the claim names it (the winner); if it
        fails, this one may have the number. Past `_RIVAL_WAIT_SECONDS` the rival is
        named as it is. Returns the numbers still held by others (E.164 -> their doc),
        whether a lookup begun with the claim is enough (no rival was waited for and no
        write ever claimed these numbers before: DidClaims.all_first), and whether a
        rival was waited for.
        """
        db, doc_id = write.db, write.doc_id
        deadline = time.monotonic() + _RIVAL_WAIT_SECONDS
        pause = _FIRST_PAUSE_SECONDS
        waited = False
        while True:
            held_here = self._claim_here(db, doc_id, added)
            if held_here:
                waited = True
                rivals = [self._done[(db, rival)] for rival in set(held_here.values())]
                if not await _until_any(rivals, deadline):
                    return held_here, False, True
                continue
            if not in_couch:
                return {}, False, waited
            if self.roster is not None and not self.roster.in_step():
                waited = True  # what was looked up before this may be out of date
                if not await self.roster.may_claim(max(0.0, deadline - time.monotonic())):
                    # Another instance may still be adding numbers unclaimed: no answer.
                    self._release(db, doc_id)
                    raise errors.datastore_unreachable("instances sharing CouchDB not in step yet")
            held, first = await self._claim_in_couch(write, added)
            if not held:
                return {}, first and not waited, waited
            waited = True
            # Ours go back while we wait: two writes holding one number each and
            # waiting for the other's would otherwise wait for each other.
            self._release(db, doc_id)
            if time.monotonic() + pause > deadline:
                return held, False, True
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_PAUSE_SECONDS)

    def _goes_solo(self) -> bool:
        """Whether this write claims its numbers in memory only: no other instance writes
        (numbers/instances.py). Counted until the write ends."""
        if self.roster is None or not self.roster.solo_write():
            return False
        task = asyncio.current_task()
        assert task is not None
        self._solo_tasks.add(task)
        # Should the write end without `stored` or `abandoned`, its task's end counts.
        task.add_done_callback(self._solo_ended)
        return True

    def _solo_ended(self, task: asyncio.Task[Any] | None = None) -> None:
        task = task or asyncio.current_task()
        if task in self._solo_tasks:
            self._solo_tasks.discard(task)  # type: ignore[arg-type]
            assert self.roster is not None
            self.roster.solo_write_done()

    def _claim_here(self, db: str, doc_id: str, added: set[str]) -> dict[str, str]:
        """Claims `added` for `doc_id` in this process, or names the writes holding them.
        Synchronous: no other write of this instance runs in between."""
        here = self._claimed_here.setdefault(db, {})
        held = {n: here[n] for n in added if here.get(n, doc_id) != doc_id}
        if not held:
            for number in added:
                here[number] = doc_id
            self._done.setdefault((db, doc_id), asyncio.Event())
        return held

    async def _claim_in_couch(
        self, write: ClaimingWrite, added: set[str]
    ) -> tuple[dict[str, str], bool]:
        assert self.claims is not None
        account_id = account_id_from_db(write.db) or write.db
        claimed = await self.claims.claim(account_id, write, added)
        key = (write.db, write.doc_id)
        self._claimed_in_couch[key] = {**self._claimed_in_couch.get(key, {}), **claimed.mine}
        return claimed.held, claimed.all_first()

    async def _routed_elsewhere(
        self, db: str, doc_id: str, added: set[str], not_before: float | None = None
    ) -> dict[str, str]:
        """The stored docs other than `doc_id` routing any of `added`, as of now (or as
        of a read begun at `not_before` or later)."""
        if self.index is not None:
            try:
                taken = await self.index.conflicts(db, doc_id, added, not_before=not_before)
            except CouchError as exc:
                log.warning("did index not read, the view answers", extra={"fault": str(exc)})
                taken = None
            if taken is not None:
                return taken
        return await self._routed_by_other_docs(db, doc_id, added)

    async def check_ownership(
        self, doc: Json, auth_account_id: str, docs: dict[str, Json] | None = None
    ) -> None:
        numbers = numbers_of(doc)
        if not numbers:
            return
        if docs is None:
            docs = await self.numbers.get_many(numbers)
        contested = {
            e164: number
            for e164, number in docs.items()
            if state_of(number) != STATE_AVAILABLE and assigned_to(number) != auth_account_id
        }
        if not contested:
            return
        parties = Parties(self.accounts)
        refused = [
            e164
            for e164, number in contested.items()
            if not await parties.verdict(number, auth_account_id)
        ]
        if refused:
            # KAZOO folds over an Erlang map of the failures (ordered by number) and
            # prepends each one, so the message lists them in descending order.
            raise errors.unauthorized_numbers(sorted(refused, reverse=True))

    async def _routed_by_other_docs(
        self, db: str, doc_id: str, numbers: set[str]
    ) -> dict[str, str]:
        """E.164 number -> id of another live connectivity doc than `doc_id` that routes
        it, for `numbers` (read from `lookup_did`)."""
        spellings = sorted({raw for e164 in numbers for raw in raw_spellings(e164)})
        taken: dict[str, str] = {}
        for start in range(0, len(spellings), _KEYS_PER_QUERY):
            for row in await self._lookup_did(db, spellings[start : start + _KEYS_PER_QUERY]):
                if row.get("id") != doc_id:
                    taken.setdefault(normalize(row["key"]), row["id"])
        return taken

    async def _lookup_did(self, db: str, keys: list[str]) -> list[Json]:
        try:
            result = await self.client.view(db, "trunkstore", "lookup_did", keys=keys)
        except DatabaseNotFound:
            return []
        except DocumentNotFound:
            await ensure_design_docs(self.client, db, "account")
            result = await self.client.view(db, "trunkstore", "lookup_did", keys=keys)
        return list(result.get("rows", []))

    # -- after the save ----------------------------------------------------------------

    async def track(
        self,
        db: str,
        before: Json | None,
        after: Json | None,
        known: dict[str, Json] | None = None,
    ) -> None:
        """Assigns added numbers to trunkstore and releases removed ones; never raises.

        `auth_by` is the account owning the connectivity doc (the target account), as in
        cb_modules_util:apply_assignment_updates/2.
        """
        old, new = numbers_of(before), numbers_of(after)
        added, removed = sorted(new - old), sorted(old - new)
        account_id = account_id_from_db(db)
        if account_id is None or (not added and not removed):
            return
        # `known`: the number docs `check` read for `after`, a moment ago.
        if known is not None:
            added = [number for number in added if number in known]
        else:
            added = await self._with_number_docs(added)
        removed = await self._with_number_docs(removed)
        if not added and not removed:
            return
        parties = Parties(self.accounts)
        doc_id = (after or before or {}).get("_id")
        where = {"account_id": account_id, "connectivity_id": doc_id}

        async def usable(number: Json) -> bool:
            return await parties.verdict(number, account_id)

        gate = asyncio.Semaphore(_PARALLEL_UPDATES)

        async def assign(e164: str) -> None:
            async with gate:
                await self.usage.assign(e164, TRUNKSTORE, usable, where=where)

        async def release(e164: str) -> None:
            async with gate:
                await self.usage.release(e164, TRUNKSTORE, usable, where=where)

        await asyncio.gather(*(assign(n) for n in added), *(release(n) for n in removed))

    async def stop(self) -> None:
        if self.claims is not None:
            await self.claims.stop()

    async def _with_number_docs(self, numbers: list[str]) -> list[str]:
        """The numbers that have a number doc, read one request per number database.

        Most DIDs of a big trunk usually have no number doc at all; skipping them here
        saves one CouchDB read per DID. If the batch read fails, every number is kept
        and the per-number path (with its retry and log) decides.
        """
        if len(numbers) <= 1:
            return numbers
        try:
            # As the check reads them: the number databases listed since the request
            # arrived, the check's own listing included (docs §11.2).
            existing = await self.usage.store.get_many(numbers, not_before=timing.arrived_at())
        except CouchError:
            return numbers
        return [number for number in numbers if number in existing]
