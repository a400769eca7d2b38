"""Connectivity docs and listing pages kept in memory until their database changes.

Every API read used to be a CouchDB round trip, which cost more than everything else
the service does for a GET (README, Performance). KAZOO serves these reads from a cache too:
crossbar_doc:load/3 goes through kz_datamgr:open_cache_doc/3, flushed by document-change
events. Here, what is cached is dropped

* when the database's continuous `_changes` feed reports any change: the changed doc
  and every listing page of that database (couchdb/change_feed.py). Each database with
  something cached has its own feed, so a write from anywhere — another instance,
  KAZOO, replication, a hand edit — reaches us within the feed's latency;
* at once, by this process's own writes (`forget`): a client reads its own writes;
* all of it, for a database whose feed is lost: nothing is served from memory unless
  its feed is open, since changes may have been missed meanwhile;
* oldest first, past `max_bytes` of data. At most `max_dbs` databases are followed; a
  new one takes the slot of one unread for IDLE_SECONDS, or is not cached at all.

A read that began before an invalidation is not stored (the generation check).
Concurrent identical reads share one CouchDB request (a burst of `paginate=false` over a
big account reads it once), but a request that starts after an invalidation never
joins a read that started before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.couchdb.change_feed import FeedHandlers
from service.couchdb.feed_hub import FeedHub, Subscription

Json = dict[str, Any]
T = TypeVar("T")

# A followed database gives its slot to another only after this long unread.
IDLE_SECONDS = 60.0
# No single entry may take more than this share of the budget (a `paginate=false`
# over a huge account is read, answered and forgotten).
LARGEST_ENTRY_SHARE = 8

# A doc as stored; what a GET shows of it (connectivity_store.DocView); a listing page.
DOC, VIEW, PAGE = "doc", "view", "page"
PER_DOC = (DOC, VIEW)
# (kind, key): a doc id, or a listing's query as `page_key` spells it.
Slot = tuple[str, str]


@dataclass
class _Entry:
    value: Any
    size: int


@dataclass
class _Database:
    name: str
    used_at: float = 0.0  # time.monotonic() of the last read
    docs: dict[str, _Entry] = field(default_factory=dict)
    views: dict[str, _Entry] = field(default_factory=dict)
    pages: dict[str, _Entry] = field(default_factory=dict)
    pending: dict[Slot, asyncio.Future[Any]] = field(default_factory=dict)
    # Bumped by every invalidation: a read that saw an older value is not stored.
    generation: int = 0
    following: bool = False
    subscription: Subscription | None = None

    def table(self, kind: str) -> dict[str, _Entry]:
        if kind == DOC:
            return self.docs
        return self.views if kind == VIEW else self.pages


class ReadCache:
    def __init__(self, feeds: FeedHub, *, max_bytes: int, max_dbs: int) -> None:
        self._feeds = feeds
        self._max_bytes = max_bytes
        self._max_dbs = max_dbs
        self._dbs: OrderedDict[str, _Database] = OrderedDict()
        # Every entry, least recently used first, with its size.
        self._lru: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self._max_bytes > 0 and self._max_dbs > 0

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def is_following(self, db: str) -> bool:
        database = self._dbs.get(db)
        return database is not None and database.following

    # -- reading -------------------------------------------------------------------------

    async def doc(self, db: str, doc_id: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The doc's JSON as CouchDB sent it; `load` reads it when it is not cached."""
        return await self._cached(db, (DOC, doc_id), load, len)

    async def view(
        self, db: str, doc_id: str, load: Callable[[], Awaitable[T]], size: Callable[[T], int]
    ) -> T:
        """What a GET of the doc answers, kept apart from the doc itself (shared)."""
        return await self._cached(db, (VIEW, doc_id), load, size)

    async def page(
        self, db: str, key: str, load: Callable[[], Awaitable[T]], size: Callable[[T], int]
    ) -> T:
        """A listing result; the caller must not change it (it is shared)."""
        return await self._cached(db, (PAGE, key), load, size)

    async def _cached(
        self, db: str, slot: Slot, load: Callable[[], Awaitable[T]], size: Callable[[T], int]
    ) -> T:
        if not self.enabled:
            return await load()
        database = self._database(db)
        if database is None or not database.following:
            return await load()
        kind, key = slot
        entry = database.table(kind).get(key)
        if entry is not None:
            self._lru.move_to_end((db, kind, key))
            return entry.value  # type: ignore[no-any-return]
        shared = database.pending.get(slot)
        if shared is not None:
            with contextlib.suppress(_LeaderCancelled):
                return await _joined(shared)  # type: ignore[no-any-return]
        return await self._load(database, slot, load, size)

    async def _load(
        self,
        database: _Database,
        slot: Slot,
        load: Callable[[], Awaitable[T]],
        size: Callable[[T], int],
    ) -> T:
        generation = database.generation
        shared: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        database.pending[slot] = shared
        try:
            value = await load()
        except Exception as exc:
            shared.set_exception(exc)
            shared.exception()  # retrieved: nobody may be waiting, and that is fine
            raise
        except BaseException:
            # Cancelled (or the process is going down): those who joined read for
            # themselves rather than wait forever.
            shared.cancel()
            raise
        finally:
            if database.pending.get(slot) is shared:
                del database.pending[slot]
        shared.set_result(value)
        if (
            database.following
            and database.generation == generation
            and self._dbs.get(database.name) is database
        ):
            self._store(database, slot, value, size(value))
        return value

    def _store(self, database: _Database, slot: Slot, value: Any, size: int) -> None:
        if size > self._max_bytes // LARGEST_ENTRY_SHARE:
            return
        kind, key = slot
        self._remove(database, kind, key)
        database.table(kind)[key] = _Entry(value, size)
        self._lru[(database.name, kind, key)] = size
        self._bytes += size
        while self._bytes > self._max_bytes and self._lru:
            (db, old_kind, old_key), _ = next(iter(self._lru.items()))
            self._remove(self._dbs[db], old_kind, old_key)

    def _remove(self, database: _Database, kind: str, key: str) -> None:
        entry = database.table(kind).pop(key, None)
        if entry is not None:
            self._bytes -= self._lru.pop((database.name, kind, key), 0)

    # -- invalidation --------------------------------------------------------------------

    def forget(self, db: str, doc_id: str) -> None:
        """This process changed `doc_id` in `db` (or may have): drop what it affects."""
        database = self._dbs.get(db)
        if database is not None:
            self._changed(database, doc_id)

    def _changed(self, database: _Database, doc_id: str | None) -> None:
        database.generation += 1
        if doc_id is not None:
            for kind in PER_DOC:
                self._remove(database, kind, doc_id)
                database.pending.pop((kind, doc_id), None)
        for key in list(database.pages):
            self._remove(database, PAGE, key)
        for slot in [slot for slot in database.pending if slot[0] == PAGE]:
            del database.pending[slot]

    def _clear(self, database: _Database) -> None:
        database.generation += 1
        for kind in (*PER_DOC, PAGE):
            for key in list(database.table(kind)):
                self._remove(database, kind, key)
        database.pending.clear()

    # -- followed databases --------------------------------------------------------------

    def _database(self, db: str) -> _Database | None:
        """The followed database, its feed started on first use; None when every slot
        is taken by a database used within IDLE_SECONDS (then nothing is cached for it,
        rather than opening and closing a feed for each read across many accounts)."""
        now = time.monotonic()
        database = self._dbs.get(db)
        if database is not None:
            self._dbs.move_to_end(db)
            database.used_at = now
            return database
        if len(self._dbs) >= self._max_dbs:
            oldest = next(iter(self._dbs.values()))
            if now - oldest.used_at < IDLE_SECONDS:
                return None
            self._drop(oldest)
        database = _Database(db, used_at=now)
        self._dbs[db] = database
        database.subscription = self._feeds.subscribe(
            db, self._handlers(database), include_docs=False
        )
        return database

    def _handlers(self, database: _Database) -> FeedHandlers:
        def opened() -> None:
            # Reads that began before the feed was open may predate a change it will not
            # replay (it starts at "now"): the generation bump keeps them out.
            self._clear(database)
            database.following = True

        def changed(change: Json) -> None:
            doc_id = change.get("id")
            self._changed(database, doc_id if isinstance(doc_id, str) else None)

        def lost() -> None:
            database.following = False
            self._clear(database)

        return FeedHandlers(opened=opened, changed=changed, lost=lost)

    def _drop(self, database: _Database) -> None:
        database.following = False
        self._clear(database)
        self._dbs.pop(database.name, None)
        if database.subscription is not None:
            self._feeds.unsubscribe(database.subscription)
            database.subscription = None

    def stop(self) -> None:
        for database in list(self._dbs.values()):
            self._drop(database)


class _LeaderCancelled(Exception):
    """The read this request joined was cancelled; it reads on its own instead."""


async def _joined(shared: asyncio.Future[Any]) -> Any:
    try:
        return await asyncio.shield(shared)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        # Only the leader was cancelled, not this request: it reads for itself.
        if shared.cancelled() and (task is None or not task.cancelling()):
            raise _LeaderCancelled from None
        raise
