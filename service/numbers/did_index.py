"""Which connectivity doc routes which number, per account, kept in memory.

The duplicate-DID check (numbers/did_guard.py) used to query `trunkstore/lookup_did` on every
write. A write has just changed the database, so that query first brings the view
index up to date: on Apache CouchDB the JavaScript query server re-runs every view of
the design doc, on the embedded server each looked-up spelling is its own range scan
(five spellings a DID). That cost 20-120 ms a write, ~20 times the write itself.

Here, for each account database written through us, the index is built once from
its docs (`_all_docs`), then kept exact by

* the database's `_changes` feed with docs: every write, from anywhere, re-sets that
  doc's numbers (never back to an older revision than one already applied);
* this process's writes, at once: a number is *claimed* when a write passes the check
  and before it is saved, so two concurrent writes here cannot both add it — the race
  the view-based check had — and set for good when the save succeeds.

While an index is being built, or its feed is lost, `conflicts` answers None and the
caller asks the view as before. Only accounts written to repeatedly are indexed, at most
`MAX_DATABASES` at once, and none too big for the memory bounds below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from service.couchdb.change_feed import FeedHandlers
from service.couchdb.client import CouchClient, CouchError
from service.couchdb.feed_hub import FeedHub, Subscription
from service.numbers.dids import routed_numbers

log = logging.getLogger(__name__)

Json = dict[str, Any]

# Bounds on memory (~350 bytes a number): an account with more docs is not indexed, and
# an index whose numbers would take the total past MAX_NUMBERS is dropped, its account
# left to the view for TOO_BIG_SECONDS before it is tried again.
MAX_DOCS = 2_000
MAX_NUMBERS = 60_000
MAX_DATABASES = 16
TOO_BIG_SECONDS = 600.0
# An account is indexed from its WRITES_BEFORE_INDEX-th write within the window; an index
# gives its slot to another only after IDLE_SECONDS without writes.
WRITES_BEFORE_INDEX = 3
WRITES_WINDOW_SECONDS = 60.0
IDLE_SECONDS = 60.0
MAX_TRACKED_ACCOUNTS = 1_024
# Docs per `_all_docs` read while building.
BUILD_SLICE = 200


@dataclass
class _Index:
    db: str
    used_at: float = 0.0  # time.monotonic() of the last write checked with it
    ready: bool = False
    # E.164 number -> ids of the stored docs that route it.
    owners: dict[str, set[str]] = field(default_factory=dict)
    # doc id -> (revision number, the numbers it routes); 0: read from the view.
    docs: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)
    # E.164 number -> id of the doc whose write of it is in flight here.
    claims: dict[str, str] = field(default_factory=dict)
    # Feed rows that came while the view was being read, applied after it.
    pending: list[Json] | None = None
    subscription: Subscription | None = None
    # Reading the docs after the feed opened (`_build`).
    build: asyncio.Task[None] | None = None

    def set_doc(self, doc_id: str, revision: int, numbers: frozenset[str]) -> None:
        previous = self.docs.get(doc_id)
        if previous is not None:
            if previous[0] > revision:
                return  # a late feed row for a revision already replaced
            for number in previous[1] - numbers:
                holders = self.owners.get(number)
                if holders is not None:
                    holders.discard(doc_id)
                    if not holders:
                        del self.owners[number]
        if numbers:
            self.docs[doc_id] = (revision, numbers)
            for number in numbers:
                self.owners.setdefault(number, set()).add(doc_id)
        else:
            self.docs.pop(doc_id, None)

    def apply_row(self, row: Json) -> None:
        doc_id = row.get("id")
        if not isinstance(doc_id, str) or doc_id.startswith("_design/"):
            return
        doc = row.get("doc")
        revision = _revision_number(doc.get("_rev") if isinstance(doc, dict) else None)
        self.set_doc(doc_id, revision, frozenset() if row.get("deleted") else routed_numbers(doc))


class DidIndex:
    def __init__(
        self, feeds: FeedHub, client: CouchClient, *, max_dbs: int = MAX_DATABASES
    ) -> None:
        self._feeds = feeds
        self._client = client
        # At most this many accounts indexed at once; 0: none (the view answers).
        self._max_dbs = max_dbs
        self._indexes: OrderedDict[str, _Index] = OrderedDict()
        # Databases found too big to index -> when that was found.
        self._too_big: dict[str, float] = {}
        # Databases not indexed yet -> (writes seen, since when).
        self._recent_writes: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def is_ready(self, db: str) -> bool:
        index = self._indexes.get(db)
        return index is not None and index.ready

    # -- the check and the claims (synchronous: nothing else runs in between) ----------

    def conflicts(self, db: str, doc_id: str, numbers: Iterable[str]) -> dict[str, str] | None:
        """Number -> the other doc that routes or is claiming it; None: not known here.

        The first call for a database starts building its index.
        """
        index = self._index(db)
        if index is None or not index.ready:
            return None
        taken: dict[str, str] = {}
        for number in numbers:
            other = next((owner for owner in index.owners.get(number, ()) if owner != doc_id), None)
            if other is None:
                claimant = index.claims.get(number)
                other = claimant if claimant != doc_id else None
            if other is not None:
                taken[number] = other
        return taken

    def claim(self, db: str, doc_id: str, numbers: Iterable[str]) -> None:
        index = self._indexes.get(db)
        if index is not None and index.ready:
            for number in numbers:
                index.claims.setdefault(number, doc_id)

    def release(self, db: str, doc_id: str) -> None:
        """The write of `doc_id` is over (saved or not): its claims go."""
        index = self._indexes.get(db)
        if index is not None:
            for number in [n for n, owner in index.claims.items() if owner == doc_id]:
                del index.claims[number]

    def saved(self, db: str, doc_id: str, doc: Json | None) -> None:
        """`doc` (None: deleted) is now stored: its numbers are routed from now on."""
        index = self._indexes.get(db)
        if index is not None and index.ready:
            # A doc removed for good has no revision to compare: its entry just goes.
            revision = _revision_number(doc.get("_rev")) if doc else _REMOVED
            index.set_doc(doc_id, revision, routed_numbers(doc))
            if self._over_bounds(index):
                self._give_up(index)
        self.release(db, doc_id)

    # -- building and following ----------------------------------------------------------

    def _index(self, db: str) -> _Index | None:
        now = time.monotonic()
        found_too_big = self._too_big.get(db)
        if found_too_big is not None:
            if now - found_too_big < TOO_BIG_SECONDS:
                return None
            del self._too_big[db]
        index = self._indexes.get(db)
        if index is not None:
            self._indexes.move_to_end(db)
            index.used_at = now
            return index
        # Building reads every doc of the account: worth it for an account written to
        # again and again, not for each one written once.
        if self._max_dbs == 0 or not self._written_often(db, now):
            return None
        if len(self._indexes) >= self._max_dbs:
            oldest = next(iter(self._indexes.values()))
            if now - oldest.used_at < IDLE_SECONDS:
                return None
            self._drop(oldest)
        index = _Index(db, used_at=now)
        self._indexes[db] = index
        index.subscription = self._feeds.subscribe(db, self._handlers(index), include_docs=True)
        return index

    def _written_often(self, db: str, now: float) -> bool:
        count, since = self._recent_writes.pop(db, (0, now))
        if now - since > WRITES_WINDOW_SECONDS:
            count, since = 0, now
        count += 1
        if count >= WRITES_BEFORE_INDEX:
            return True
        self._recent_writes[db] = (count, since)
        while len(self._recent_writes) > MAX_TRACKED_ACCOUNTS:
            self._recent_writes.popitem(last=False)
        return False

    def _handlers(self, index: _Index) -> FeedHandlers:
        def opened() -> None:
            # Rows from now on wait until the docs have been read, then apply on top.
            index.pending = []
            index.build = asyncio.create_task(
                self._build(index), name=f"did-index build {index.db}"
            )

        def changed(row: Json) -> None:
            if index.pending is not None:
                index.pending.append(row)
                if len(index.pending) > MAX_DOCS:
                    self._give_up(index)  # a bulk load under way
            elif index.ready:
                index.apply_row(row)
                if self._over_bounds(index):
                    self._give_up(index)

        return FeedHandlers(opened=opened, changed=changed, lost=lambda: _reset(index))

    async def _build(self, index: _Index) -> None:
        try:
            complete = await self._read_stored_docs(index)
        except CouchError as exc:
            # The view path serves meanwhile; the next write tries again.
            log.warning("did index not built", extra={"couch_db": index.db, "fault": str(exc)})
            self._drop(index)
            return
        if not complete:
            self._give_up(index)
            return
        for row in index.pending or []:
            index.apply_row(row)
        index.pending = None
        index.ready = True

    async def _read_stored_docs(self, index: _Index) -> bool:
        """Every doc's numbers into `index`, a slice at a time; False when too many docs.

        `_all_docs` rather than a view: it needs no index to be brought up to date, and
        it is exactly what the feed will tell about from now on. Each slice is reduced
        to numbers before the next is read: whole docs of a big account, decoded at
        once, would take far more memory than the index itself.
        """
        info = await self._client.db_info(index.db)
        if int(info.get("doc_count") or 0) > MAX_DOCS:
            return False
        start_key: str | None = None
        while True:
            result = await self._client.all_docs(
                index.db, include_docs=True, startkey=start_key, limit=BUILD_SLICE + 1
            )
            rows = result.pop("rows", [])
            for row in rows[:BUILD_SLICE]:
                doc = row.get("doc")
                if isinstance(doc, dict) and not row["id"].startswith("_design/"):
                    revision = _revision_number(doc.get("_rev"))
                    index.set_doc(row["id"], revision, routed_numbers(doc))
            if self._over_bounds(index):
                return False
            if len(rows) <= BUILD_SLICE:
                return True
            # The extra row starts the next slice (ids are unique).
            start_key = rows[BUILD_SLICE]["id"]

    def _over_bounds(self, index: _Index) -> bool:
        return len(index.docs) > MAX_DOCS or self._numbers() > MAX_NUMBERS

    def _numbers(self) -> int:
        return sum(len(index.owners) for index in self._indexes.values())

    def _give_up(self, index: _Index) -> None:
        log.info("did index too big, the view answers", extra={"couch_db": index.db})
        self._too_big[index.db] = time.monotonic()
        self._drop(index)

    def _drop(self, index: _Index) -> None:
        self._indexes.pop(index.db, None)
        _reset(index)
        if index.subscription is not None:
            self._feeds.unsubscribe(index.subscription)
            index.subscription = None

    def stop(self) -> None:
        for index in list(self._indexes.values()):
            self._drop(index)


def _reset(index: _Index) -> None:
    if index.build is not None:
        index.build.cancel()
        index.build = None
    index.ready = False
    index.pending = None
    index.owners.clear()
    index.docs.clear()
    index.claims.clear()


# Above any revision number a doc can have.
_REMOVED = 1 << 62


def _revision_number(rev: Any) -> int:
    if isinstance(rev, str) and "-" in rev:
        with contextlib.suppress(ValueError):
            return int(rev.split("-", 1)[0])
    return 0
