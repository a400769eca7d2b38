"""Reading and writing number documents: `numbers/<prefix>` and the owner's copy.

KAZOO keeps each number twice: the authoritative doc in its number database and a copy
in the database of the account it is assigned to (knm_phone_number:save/1). Every write
here goes to the number database first, then to the copy.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from service.couchdb.client import CouchClient, DatabaseNotFound, DocumentConflict, DocumentNotFound
from service.couchdb.design_docs import ensure_design_docs
from service.kazoo.changes import Action, DocWritten, hard_deleted, saved_action
from service.kazoo.ids import account_db
from service.numbers.docs import account_copy, assigned_to, is_live
from service.numbers.number_dbs import NumberDbs
from service.numbers.rules import is_reconcilable, normalize, number_db
from service.stores import listing
from service.stores.accounts import ADMIN_ONLY_SECURITY

log = logging.getLogger(__name__)

Json = dict[str, Any]

NUMBERS_CLASSIFICATION = "numbers"


# Number databases read at once by get_many.
_PARALLEL_READS = 8
# Keys per `_all_docs` read: a 50,000-DID trunk whose numbers share one database is read
# in parts, each well inside the CouchDB timeout even while other writes load it.
_KEYS_PER_READ = 2_000
# A database holding fewer docs than a quarter of the keys asked is read whole instead.
_WHOLE_DB_FACTOR = 4


class NumberStore:
    def __init__(self, client: CouchClient) -> None:
        self.client = client
        self.number_dbs = NumberDbs(client)
        # Told of every number doc and copy written (service/kazoo/changes.py).
        self.on_written: DocWritten | None = None

    async def account_page(self, db: str, request: listing.PageRequest) -> listing.Page:
        """One page of the account's number copies (cb_phone_numbers' summary, §11)."""

        async def install_views() -> None:
            await ensure_design_docs(self.client, db, "account")

        return await listing.read_page(
            self.client,
            db,
            "phone_numbers",
            "crossbar_listing",
            request,
            install_views=install_views,
        )

    # -- reading -----------------------------------------------------------------------

    async def get(self, e164: str, *, include_deleted: bool = False) -> Json | None:
        """The live number doc, or None (no database, no doc, or soft-deleted)."""
        db = number_db(e164)
        if db is None:
            return None
        try:
            doc = await self.client.get_doc(db, e164)
        except (DocumentNotFound, DatabaseNotFound):
            return None
        return doc if include_deleted or is_live(doc) else None

    async def owner_of(self, raw: str) -> str | None:
        """The account a number (any spelling KAZOO normalises) is assigned to
        (knm_number:lookup_account/1, as `user_auth` finds an account by `phone_number`)."""
        if not is_reconcilable(raw):
            return None
        doc = await self.get(normalize(raw))
        return assigned_to(doc) if doc is not None else None

    async def get_many(
        self, numbers: Iterable[str], *, not_before: float | None = None
    ) -> dict[str, Json]:
        """The live docs of these E.164 numbers: one request per number database.
        `not_before`: the number databases as listed then or later (number_dbs.py)."""
        by_db: dict[str, list[str]] = defaultdict(list)
        for e164 in sorted(set(numbers)):
            db = number_db(e164)
            if db is not None:
                by_db[db].append(e164)
        # Random DIDs spread over many number databases: read them side by side, a few
        # at a time, rather than one round trip after another.
        gate = asyncio.Semaphore(_PARALLEL_READS)

        async def read(db: str, ids: list[str]) -> dict[str, Json]:
            async with gate:
                try:
                    return await self.client.get_docs(db, ids)
                except DatabaseNotFound:
                    return {}

        async def read_db(db: str, ids: list[str]) -> dict[str, Json]:
            if len(ids) > _KEYS_PER_READ and await self._holds_fewer_than(db, len(ids)):
                return await self._whole_db(db, set(ids))
            parts = range(0, len(ids), _KEYS_PER_READ)
            found: dict[str, Json] = {}
            for docs in await asyncio.gather(
                *(read(db, ids[i : i + _KEYS_PER_READ]) for i in parts)
            ):
                found.update(docs)
            return found

        # The databases known to exist are read while the fresh listing tells whether
        # others appeared (number_dbs.py): the two reads go side by side.
        known = self.number_dbs.known(set(by_db))
        early = [asyncio.ensure_future(read_db(db, by_db[db])) for db in sorted(known)]
        try:
            existing = await self.number_dbs.existing(set(by_db), not_before=not_before)
            late = [read_db(db, ids) for db, ids in by_db.items() if db in existing - known]
            answers = await asyncio.gather(*early, *late)
        except BaseException:
            for task in early:
                task.cancel()
            raise
        found: dict[str, Json] = {}
        for docs in answers:
            found.update({e164: doc for e164, doc in docs.items() if is_live(doc)})
        return found

    async def _holds_fewer_than(self, db: str, keys: int) -> bool:
        """Whether reading the whole database is cheaper than looking `keys` ids up: a
        lookup costs CouchDB ~0.1 ms a key whether the doc exists or not (5.5 s for a
        50,000-DID trunk on Apache CouchDB), a page of the database far less a doc."""
        try:
            info = await self.client.db_info(db)
        except DatabaseNotFound:
            return False
        count = info.get("doc_count")
        return isinstance(count, int) and count * _WHOLE_DB_FACTOR < keys

    async def _whole_db(self, db: str, wanted: set[str]) -> dict[str, Json]:
        found: dict[str, Json] = {}
        after: str | None = None
        while True:
            params: dict[str, Any] = {"include_docs": True, "limit": _KEYS_PER_READ}
            if after is not None:
                params.update(startkey=after, skip=1)
            try:
                page = await self.client.all_docs(db, **params)
            except DatabaseNotFound:
                return found
            rows = page.get("rows") or []
            for row in rows:
                doc = row.get("doc")
                if row.get("id") in wanted and isinstance(doc, dict):
                    found[row["id"]] = doc
            if len(rows) < _KEYS_PER_READ:
                return found
            after = rows[-1]["id"]

    async def get_copy(self, account_id: str, e164: str) -> Json | None:
        try:
            return await self.client.get_doc(account_db(account_id), e164)
        except (DocumentNotFound, DatabaseNotFound):
            return None

    # -- writing -----------------------------------------------------------------------

    async def save(self, doc: Json) -> Json:
        """Saves into the number database (created on first use); returns the stored doc.

        Raises DocumentConflict when `doc` is not at the current revision.
        """
        db = number_db(doc["_id"])
        assert db is not None
        try:
            saved = await self.client.put_doc(db, doc)
        except DatabaseNotFound:
            await self.ensure_db(db)
            saved = await self.client.put_doc(db, doc)
        stored = dict(doc)
        stored["_rev"] = saved.rev
        self._written(db, stored, saved_action(doc))
        return stored

    async def ensure_db(self, db: str) -> None:
        # knm_phone_number:save_to/3 creates a missing number db and refreshes its views.
        if await self.client.ensure_db(db):
            await self.client.put_security(db, ADMIN_ONLY_SECURITY)
        await ensure_design_docs(self.client, db, NUMBERS_CLASSIFICATION)

    async def delete(self, doc: Json) -> None:
        """Removes the number from its number database for good (knm_phone_number:delete/1)."""
        db = number_db(doc["_id"])
        assert db is not None
        try:
            tombstone = await self.client.delete_doc(db, doc["_id"], doc["_rev"])
        except (DocumentNotFound, DatabaseNotFound):
            return
        self._written(db, hard_deleted(doc, tombstone.rev), "deleted")

    async def save_copy(self, doc: Json) -> bool:
        """Writes the copy into the owner's account db; False when there is no owner or db.

        Raises DocumentConflict if the copy changed between read and write.
        """
        owner = assigned_to(doc)
        if owner is None:
            return False
        copy = account_copy(doc)
        existing = await self.get_copy(owner, doc["_id"])
        if existing is not None:
            copy["_rev"] = existing["_rev"]
        try:
            saved = await self.client.put_doc(account_db(owner), copy)
        except DatabaseNotFound:
            # KAZOO skips owners without a database ("no db for ~p").
            log.warning("number owner has no account database", extra={"number": doc["_id"]})
            return False
        self._written(account_db(owner), {**copy, "_rev": saved.rev}, saved_action(copy))
        return True

    async def delete_copy(self, account_id: str, e164: str) -> None:
        """knm_phone_number:unassign_from_prev/1: the previous owner's copy goes away."""
        existing = await self.get_copy(account_id, e164)
        if existing is None:
            return
        db = account_db(account_id)
        try:
            tombstone = await self.client.delete_doc(db, e164, existing["_rev"])
        except (DocumentNotFound, DatabaseNotFound):
            return
        except DocumentConflict:
            # Someone rewrote it meanwhile; one more try with the new revision.
            existing = await self.get_copy(account_id, e164)
            if existing is None:
                return
            tombstone = await self.client.delete_doc(db, e164, existing["_rev"])
        self._written(db, hard_deleted(existing, tombstone.rev), "deleted")

    def _written(self, db: str, doc: Json, action: Action) -> None:
        if self.on_written is not None:
            self.on_written(db, doc, action)

    async def write_through(self, doc: Json, previous_owner: str | None) -> Json:
        """Number db, then the owner's copy, then the old owner's copy removed."""
        stored = await self.save(doc)
        await self.save_copy(stored)
        if previous_owner is not None and previous_owner != assigned_to(stored):
            await self.delete_copy(previous_owner, stored["_id"])
        return stored

    async def remove(self, doc: Json) -> None:
        """The number gone from its number db and from its owner's account db."""
        await self.delete(doc)
        owner = assigned_to(doc)
        if owner is not None:
            await self.delete_copy(owner, doc["_id"])
