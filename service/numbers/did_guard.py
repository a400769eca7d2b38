"""What a connectivity write does with its DIDs: checked before saving, assigned after.

Before the save (after schema validation, §1 step 8): no DID twice in the
account (ours, see `dids`), then KAZOO's ownership check (§11.1) with the
*authenticated* account. After a successful save: numbers that appeared get
`pvt_used_by: "trunkstore"`, numbers that disappeared lose it (§11.2). Unlike KAZOO
(§14 #4), a PUT assigns its numbers too.

The uniqueness check asks the account's in-memory DID index (numbers/did_index.py), which claims
the numbers of a write that passes until it is saved, so two writes through one
instance cannot both add a number. Until that index is built, or for an account too
big for it, the check reads `trunkstore/lookup_did` instead; then, as between two
instances, two racing writes can both pass, and `ensure-numbers` reports the duplicate.
"""

from __future__ import annotations

import asyncio
from typing import Any

from service.couchdb.client import CouchClient, CouchError, DatabaseNotFound, DocumentNotFound
from service.couchdb.design_docs import ensure_design_docs
from service.kazoo import errors
from service.kazoo.documents import WriteContext
from service.kazoo.ids import account_id_from_db
from service.numbers.did_index import DidIndex
from service.numbers.dids import (
    as_validation_errors,
    dids_of,
    duplicates_against,
    duplicates_within,
    numbers_of,
    routed_numbers,
)
from service.numbers.docs import STATE_AVAILABLE, TRUNKSTORE, assigned_to, state_of
from service.numbers.parties import Parties
from service.numbers.rules import normalize, raw_spellings
from service.numbers.store import NumberStore
from service.numbers.usage import NumberUsage
from service.stores.accounts import AccountStore

Json = dict[str, Any]

# Keys per lookup_did query: a GET's URL stays well under any server's limit.
_KEYS_PER_QUERY = 100
# Number docs updated at once after a write.
_PARALLEL_UPDATES = 8


class DidGuard:
    def __init__(
        self,
        client: CouchClient,
        accounts: AccountStore,
        numbers: NumberStore,
        index: DidIndex | None = None,
    ) -> None:
        self.client = client
        self.accounts = accounts
        self.numbers = numbers
        self.usage = NumberUsage(numbers)
        # Answers the uniqueness check from memory once built; the view otherwise.
        self.index = index

    # -- before the save ---------------------------------------------------------------

    async def check(
        self, db: str, doc: Json, ctx: WriteContext, before: Json | None = None
    ) -> dict[str, Json]:
        """400 for a duplicate DID, then 403 for numbers the caller may not use.

        `before`: the stored doc an update replaces. Returns the number docs it read
        (E.164 -> doc), so that `track` after the save need not read them again.
        """
        await self.check_unique(db, doc, before)
        # From here until `stored` or `abandoned`, the doc's numbers are claimed.
        try:
            numbers = numbers_of(doc)
            docs = await self.numbers.get_many(numbers) if numbers else {}
            if ctx.auth_account_id is not None:
                await self.check_ownership(doc, ctx.auth_account_id, docs)
        except BaseException:
            self.abandoned(db, doc["_id"])
            raise
        return docs

    def stored(self, db: str, doc_id: str, doc: Json | None) -> None:
        """The write of `doc_id` succeeded (`doc` None: removed for good)."""
        if self.index is not None:
            self.index.saved(db, doc_id, doc)

    def abandoned(self, db: str, doc_id: str) -> None:
        """The write of `doc_id` did not happen (or its outcome is unknown)."""
        if self.index is not None:
            self.index.release(db, doc_id)

    async def check_unique(self, db: str, doc: Json, before: Json | None = None) -> None:
        """Only DIDs the write adds are looked up in other docs: a number the stored doc
        already routes was checked when it came in, and an edit that does not touch it
        is not refused for a duplicate someone else made since (KAZOO checks nothing).
        It also spares the lookup — the dearest part of a write — for most updates.
        """
        dids = dids_of(doc)
        doc_id = str(doc["_id"])
        added = {did.e164 for did in dids} - {did.e164 for did in dids_of(before)}
        taken = self.index.conflicts(db, doc_id, added) if self.index is not None else None
        if taken is None:
            taken = await self._routed_by_other_docs(db, doc_id, added)
        found = as_validation_errors(duplicates_against(dids, taken))
        found.update(as_validation_errors(duplicates_within(dids)))
        if found:
            raise errors.validation_error(found)
        if self.index is not None:
            # No await since `conflicts`: no other write can have claimed them meanwhile.
            self.index.claim(db, doc_id, routed_numbers(doc))

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

    async def _with_number_docs(self, numbers: list[str]) -> list[str]:
        """The numbers that have a number doc, read one request per number database.

        Most DIDs of a big trunk usually have no number doc at all; skipping them here
        saves one CouchDB read per DID. If the batch read fails, every number is kept
        and the per-number path (with its retry and log) decides.
        """
        if len(numbers) <= 1:
            return numbers
        try:
            existing = await self.usage.store.get_many(numbers)
        except CouchError:
            return numbers
        return [number for number in numbers if number in existing]
