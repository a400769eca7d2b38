"""Which connectivity doc routes which number, per account, kept in memory and exact.

The duplicate-DID check (numbers/did_guard.py) used to query `trunkstore/lookup_did`,
and a query first brings that view up to date with every write since the last one: on
Apache CouchDB the JavaScript query server re-runs KAZOO's three views over the other
writers' docs, on the embedded server each looked-up spelling is its own range scan.
Writes were capped by the view indexer, and the cost grew with the account.

Here an account's index is read from its `_changes` (with docs, a slice at a time) the
first time a write needs it, and every later check brings it up to date first, from the
sequence it last applied: the check sees what every writer (KAZOO, another instance, a
replication) stored before it began, and costs what changed since, not what the account
holds. When nothing but our own saves has happened since (the database's update
sequence is exactly ours ahead), one `GET /{db}` replaces the changes read; once a read
finds that others wrote too (KAZOO's apps write into the same database), or the first
read finds docs we did not see written, the next goes straight to the changes, since
asking first would likely only say so (README, Performance).

The account's own doc lives in the same database, so these reads also come across it:
they pass it on (`AccountDocs`, cache/accounts.py), and a first write into an account
needs no read of its own for it.

Concurrent checks of one account share reads (couchdb/fresh_reads.py): a check waits for
the next read that starts after it began, never for one already under way (that one may
miss a write acknowledged just before the check).

Memory grows with the numbers of the accounts written to: at most `max_numbers` numbers
and `max_dbs` accounts are kept, the least recently written going first (a later write
reads them again). An account whose numbers alone exceed the budget is checked through
the view instead (`conflicts` answers None).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from service.couchdb.client import CouchClient, CouchError, DatabaseNotFound
from service.couchdb.fresh_reads import FreshReads
from service.kazoo.ids import account_id_from_db
from service.numbers.dids import routed_numbers

log = logging.getLogger(__name__)

Json = dict[str, Any]
# An E.164 number as kept in memory: its digits as an int (a third of the string's size).
Key = int | str

# Docs per `_changes` read: a big account is read in slices, each reduced to numbers
# before the next, so that its docs are never all decoded at once.
SLICE = 500
# What Apache CouchDB's `GET /` names as its vendor.
APACHE_VENDOR = "The Apache Software Foundation"
# An account too big for the numbers budget is left to the view for this long.
TOO_BIG_SECONDS = 600.0


class AccountDocs(Protocol):
    """Where the account docs the index's reads come across go (cache/accounts.py)."""

    def reading(self) -> object:
        """A mark taken as a read starts: what it learns dates from then."""

    def seen(self, mark: object, account_id: str, doc: Json | None) -> None:
        """The read found the account's doc (None: it was deleted)."""

    def unchanged(self, mark: object, account_id: str, rev: str) -> None:
        """The read found no change to the account's doc since revision `rev`."""


@dataclass
class _Index:
    db: str
    # The account whose database this is (its doc is among the rows), if any.
    account_id: str | None = None
    # The revision of the account doc as of `seq` (None: not seen, or deleted).
    account_rev: str | None = None
    # The update sequence everything below reflects ("0": nothing read yet).
    seq: Any = "0"
    # doc id -> (revision number, the numbers it routes, as `number_key`s).
    docs: dict[str, tuple[int, tuple[Key, ...]]] = field(default_factory=dict)
    # E.164 number -> ids of the stored docs that route it.
    # Compact: one owner is the doc id itself, a set only when several docs route it.
    owners: dict[Key, str | set[str]] = field(default_factory=dict)
    # Our own saves acknowledged since `seq`, already applied (the shortcut's arithmetic).
    ours: int = 0
    # Our writes between their check and their save's answer.
    flying: int = 0
    # Bumped whenever one of our writes starts flying: a read it overlapped is not exact.
    flights: int = 0
    # Something of ours happened that the arithmetic cannot count (an unknown outcome).
    uncounted: bool = False
    # When one of our saves last failed or ended unknown (time.monotonic): it may still
    # land, so only a read begun after it can tell.
    lost_at: float = 0.0
    # The last read found writes that were not ours: the next one skips `GET /{db}`.
    others_wrote: bool = False
    # The last changes read came across docs that were not our acknowledged saves: the
    # next one asks for the docs along (theirs likely come in runs); otherwise it reads
    # ids and revisions only, and fetches just the docs it does not know.
    strangers: bool = True
    # Our acknowledged saves not yet met in a changes read: doc id -> (revision, the
    # number of reads begun when it landed). Their rows are skipped: `landed` applied them.
    landed_revs: dict[str, tuple[str, int]] = field(default_factory=dict)
    reads_begun: int = 0
    # Reads of what changed, shared by the checks that wait for the same one.
    reads: FreshReads[None] | None = None

    def numbers(self) -> int:
        return len(self.owners)

    def set_doc(self, doc_id: str, revision: int, numbers: frozenset[str]) -> None:
        previous = self.docs.get(doc_id)
        keys = tuple(number_key(number) for number in numbers)
        if previous is not None:
            if previous[0] > revision:
                return  # an older revision than one already applied
            for key in set(previous[1]) - set(keys):
                self._unroute(key, doc_id)
        self.docs[doc_id] = (revision, keys)
        for key in keys:
            holders = self.owners.get(key)
            if holders is None or holders == doc_id:
                self.owners[key] = doc_id
            elif isinstance(holders, set):
                holders.add(doc_id)
            else:
                self.owners[key] = {holders, doc_id}

    def _unroute(self, key: Key, doc_id: str) -> None:
        holders = self.owners.get(key)
        if holders == doc_id:
            del self.owners[key]
        elif isinstance(holders, set):
            holders.discard(doc_id)
            if len(holders) == 1:
                self.owners[key] = next(iter(holders))
            elif not holders:
                del self.owners[key]

    def is_ours(self, row: Json) -> bool:
        """Whether a changes row is one of our acknowledged saves (already applied)."""
        landed = self.landed_revs.pop(row["id"], None)
        return landed is not None and landed[0] == row_revision(row)

    def forget_landed_before(self, read: int) -> None:
        """Saves that landed before read number `read` began have their rows in it (or
        in an earlier one): none is left to be recognised."""
        for doc_id in [d for d, (_rev, at) in self.landed_revs.items() if at < read]:
            del self.landed_revs[doc_id]

    def other_owner(self, number: str, doc_id: str) -> str | None:
        holders = self.owners.get(number_key(number))
        if holders is None or holders == doc_id:
            return None
        if isinstance(holders, str):
            return holders
        return next((owner for owner in sorted(holders) if owner != doc_id), None)

    def apply_row(self, row: Json) -> Json | None:
        """Applies one change (not a design doc's: `routes_nothing`); returns it when it
        is the account doc's."""
        doc_id = row["id"]
        if doc_id == self.account_id:
            account = live_doc(row)
            self.account_rev = account.get("_rev") if account is not None else None
            return row
        doc = row.get("doc")
        numbers = frozenset() if row.get("deleted") else routed_numbers(doc)
        self.set_doc(doc_id, revision_number(row_revision(row)), numbers)
        return None


class DidIndex:
    def __init__(
        self,
        client: CouchClient,
        *,
        max_dbs: int = 10_000,
        max_numbers: int = 400_000,
        account_docs: AccountDocs | None = None,
        ids_first: bool | None = None,
    ) -> None:
        self._client = client
        self._account_docs = account_docs
        # Whether a changes read may ask for ids and revisions alone: where the docs
        # cost the server a read each (Apache CouchDB). The embedded server keeps them
        # in its by-sequence store and spent more with the ids-first reads than without
        # (README, Performance). None: asked of the server at the first read.
        self._ids_first = ids_first
        # 0: nothing is indexed, every check asks the view.
        self._max_dbs = max_dbs
        self._max_numbers = max_numbers
        self._indexes: OrderedDict[str, _Index] = OrderedDict()
        # Databases found too big for the budget -> when that was found.
        self._too_big: dict[str, float] = {}
        # Each index's numbers as last counted, and their sum: the budget is checked at
        # every read and save, and summing every account's index each time cost a write
        # more than its check once a few hundred accounts were indexed.
        self._counted: dict[str, int] = {}
        self._total = 0

    def is_ready(self, db: str) -> bool:
        index = self._indexes.get(db)
        return index is not None and index.seq != "0"

    def numbers(self) -> int:
        return self._total

    # -- the check ---------------------------------------------------------------------

    async def conflicts(
        self, db: str, doc_id: str, numbers: Iterable[str], *, not_before: float | None = None
    ) -> dict[str, str] | None:
        """Number -> another stored doc than `doc_id` that routes it, as of now (or as of
        a read begun at `not_before` or later); None when this account is not indexed
        (the caller asks the view)."""
        index = self._index(db)
        if index is None:
            return None
        assert index.reads is not None
        if not_before is not None:
            not_before = max(not_before, index.lost_at)
        await asyncio.shield(index.reads.fresh(not_before))
        if self._indexes.get(db) is not index:
            return None  # dropped while reading: too big for the budget
        taken: dict[str, str] = {}
        for number in numbers:
            other = index.other_owner(number, doc_id)
            if other is not None:
                taken[number] = other
        return taken

    def read_ahead(self, db: str) -> None:
        """Starts bringing the account's index up to date now, for a check to come
        (`conflicts` with `not_before` at or before now)."""
        index = self._index(db)
        if index is not None:
            assert index.reads is not None
            index.reads.read_ahead()

    def read_under_way(self, db: str) -> asyncio.Future[None] | None:
        """The read of the account's index now running, if one is (it passes the
        account doc on to `account_docs` as it ends)."""
        index = self._indexes.get(db)
        return index.reads.under_way() if index is not None and index.reads else None

    # -- our own writes ----------------------------------------------------------------

    def flying(self, db: str) -> None:
        """A write checked here is about to be saved."""
        index = self._indexes.get(db)
        if index is not None:
            index.flying += 1
            index.flights += 1

    def landed(self, db: str, doc_id: str, doc: Json | None) -> None:
        """That save succeeded: `doc` (a tombstone for a removal) is stored."""
        index = self._indexes.get(db)
        if index is None:
            return
        index.flying = max(0, index.flying - 1)
        index.ours += 1
        if doc is not None:
            rev = doc.get("_rev")
            index.set_doc(doc_id, revision_number(rev), routed_numbers(doc))
            if isinstance(rev, str):
                index.landed_revs[doc_id] = (rev, index.reads_begun)
            self._over_budget(index)

    def lost(self, db: str) -> None:
        """That save failed or its outcome is unknown."""
        index = self._indexes.get(db)
        if index is not None:
            index.flying = max(0, index.flying - 1)
            index.uncounted = True
            index.lost_at = time.monotonic()

    # -- reading -----------------------------------------------------------------------

    def _index(self, db: str) -> _Index | None:
        if self._max_dbs == 0:
            return None
        found_too_big = self._too_big.get(db)
        if found_too_big is not None:
            if time.monotonic() - found_too_big < TOO_BIG_SECONDS:
                return None
            del self._too_big[db]
        index = self._indexes.get(db)
        if index is None:
            index = _Index(db, account_id=account_id_from_db(db))
            index.reads = FreshReads(partial(self._read, index), f"did index {db}")
            self._indexes[db] = index
            while len(self._indexes) > self._max_dbs:
                self._drop(next(iter(self._indexes.values())))
        else:
            self._indexes.move_to_end(db)
        return index

    async def _read(self, index: _Index) -> None:
        flights, flying_at_start = index.flights, index.flying
        mark = self._account_docs.reading() if self._account_docs is not None else None
        quiet = flying_at_start == 0 and not index.uncounted
        probe = quiet and index.seq != "0" and not index.others_wrote
        if probe and await self._only_ours_since(index, flights):
            self._account_unchanged(index, mark)
            return
        seq_at_start, ours_at_start = index.seq, index.ours
        index.reads_begun += 1
        began = index.reads_begun
        # Mostly our own saves, already applied, come back: read ids and revisions, and
        # fetch only the docs not known (README, Performance). With the docs when others'
        # are likely there: a first read, one after a read that met theirs, or one the
        # probe just found others' writes for.
        with_docs = seq_at_start == "0" or index.strangers or probe or not await self._ask_ids()
        strangers = False
        account_row: Json | None = None
        while True:
            try:
                result = await self._client.changes(
                    index.db, since=index.seq, limit=SLICE, include_docs=with_docs
                )
                rows = result.get("results") or []
                unknown: list[Json] = []
                for row in rows:
                    if routes_nothing(row) or index.is_ours(row):
                        continue
                    strangers = True
                    if with_docs or row.get("deleted"):
                        account_row = index.apply_row(row) or account_row
                    else:
                        unknown.append(row)
                for row in await self._with_docs(index.db, unknown):
                    account_row = index.apply_row(row) or account_row
            except DatabaseNotFound:
                return
            index.seq = result.get("last_seq", index.seq)
            if self._over_budget(index):
                return
            if len(rows) < SLICE:
                break
        index.forget_landed_before(began)
        index.strangers = strangers
        if seq_at_start == "0":
            # Docs besides the account's own and the design docs were written before we
            # followed the database, by others (KAZOO's apps, a replication) or by an
            # earlier run: the next check reads the changes without asking first, since
            # a probe that finds theirs costs a request more; its read then tells whether
            # only ours came since (README, Performance). `docs` holds exactly those.
            index.others_wrote = bool(index.docs)
        elif quiet and index.flights == flights:
            # Moved by more than our saves: others write here, the probe would say so.
            moved = seq_number(index.seq) - seq_number(seq_at_start)
            index.others_wrote = moved != ours_at_start
        # Our saves counted so far are in what was read, unless one was under way.
        index.ours = 0
        index.uncounted = flying_at_start > 0 or index.flights != flights or index.flying > 0
        if account_row is None:
            self._account_unchanged(index, mark)
        elif self._account_docs is not None and index.account_id is not None:
            self._account_docs.seen(mark, index.account_id, live_doc(account_row))

    async def _ask_ids(self) -> bool:
        if self._ids_first is None:
            try:
                welcome = await self._client.welcome()
            except CouchError:
                return False  # asked again at the next read
            vendor = welcome.get("vendor")
            name = vendor.get("name") if isinstance(vendor, dict) else None
            self._ids_first = name == APACHE_VENDOR
        return self._ids_first

    async def _with_docs(self, db: str, rows: list[Json]) -> list[Json]:
        """`rows` (changes rows without docs) as rows with their docs, each doc as it
        stands now: a later revision than the row's is applied as well (set_doc keeps
        the latest), and a doc gone since reads as deleted."""
        if not rows:
            return []
        current = await self._client.current_docs(db, [str(row["id"]) for row in rows])
        with_docs = []
        for row in rows:
            rev, doc = current.get(row["id"], (None, None))
            if rev is None:
                # Purged since: nothing of it routes a number any more.
                with_docs.append({**row, "deleted": True})
            else:
                deleted = doc is None or bool(doc.get("_deleted"))
                with_docs.append({**row, "changes": [{"rev": rev}], "deleted": deleted, "doc": doc})
        return with_docs

    def _account_unchanged(self, index: _Index, mark: object) -> None:
        if self._account_docs is not None and index.account_id and index.account_rev:
            self._account_docs.unchanged(mark, index.account_id, index.account_rev)

    async def _only_ours_since(self, index: _Index, flights: int) -> bool:
        """Whether the database moved by exactly our acknowledged saves since `seq`: then
        nothing else was written, and the index is exact without reading changes."""
        try:
            info = await self._client.db_info(index.db)
        except DatabaseNotFound:
            return False
        update_seq = info.get("update_seq")
        ahead = seq_number(update_seq) - seq_number(index.seq)
        if index.flights != flights or index.flying > 0 or ahead != index.ours:
            return False
        index.seq = update_seq
        index.ours = 0
        # Their rows are behind `seq` now: no read will come across them.
        index.landed_revs.clear()
        return True

    # -- memory ------------------------------------------------------------------------

    def _over_budget(self, index: _Index) -> bool:
        """Drops the least recently written accounts while over the numbers budget; True
        when `index` alone is over it (it is then dropped and left to the view)."""
        if self._indexes.get(index.db) is not index:
            return False  # dropped meanwhile: counts for nothing
        self._recount(index)
        if self._total <= self._max_numbers:
            return False
        for other in list(self._indexes.values()):
            if other is not index:
                self._drop(other)
                if self._total <= self._max_numbers:
                    return False
        log.info(
            "did index over its numbers budget, the view answers", extra={"couch_db": index.db}
        )
        self._too_big[index.db] = time.monotonic()
        self._drop(index)
        return True

    def _recount(self, index: _Index) -> None:
        numbers = index.numbers()
        self._total += numbers - self._counted.get(index.db, 0)
        self._counted[index.db] = numbers

    def _drop(self, index: _Index) -> None:
        if self._indexes.get(index.db) is index:
            del self._indexes[index.db]
            self._total -= self._counted.pop(index.db, 0)
        index.docs.clear()
        index.owners.clear()
        index.landed_revs.clear()

    def stop(self) -> None:
        for index in list(self._indexes.values()):
            if index.reads is not None:
                index.reads.cancel()
            self._drop(index)


def live_doc(row: Json) -> Json | None:
    """The doc a `_changes` row (with docs) carries, None for a deletion."""
    doc = row.get("doc")
    return doc if isinstance(doc, dict) and not row.get("deleted") else None


def number_key(number: str) -> Key:
    digits = number[1:]
    if number.startswith("+") and digits.isdigit() and digits[0] != "0" and len(digits) < 19:
        return int(digits)
    return number


def routes_nothing(row: Json) -> bool:
    """A changes row no check needs: a design doc's, or one without an id."""
    doc_id = row.get("id")
    return not isinstance(doc_id, str) or doc_id.startswith("_design/")


def row_revision(row: Json) -> Any:
    """The revision a changes row stands for: its doc's, or the row's leaf."""
    doc = row.get("doc")
    if isinstance(doc, dict):
        return doc.get("_rev")
    changes = row.get("changes")
    return changes[0].get("rev") if isinstance(changes, list) and changes else None


def revision_number(rev: Any) -> int:
    if isinstance(rev, str) and "-" in rev:
        with contextlib.suppress(ValueError):
            return int(rev.split("-", 1)[0])
    return 0


def seq_number(seq: Any) -> int:
    """The count part of an update sequence: an integer on the embedded server, the
    `N-…` prefix of Apache CouchDB's opaque sequences (N grows by one per write)."""
    if isinstance(seq, int):
        return seq
    if isinstance(seq, str):
        head = seq.split("-", 1)[0]
        with contextlib.suppress(ValueError):
            return int(head)
    return -1
