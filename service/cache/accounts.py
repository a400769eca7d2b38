"""Account documents kept in memory, and dropped as soon as CouchDB says they changed.

Every API request reads the target account's doc, and the token's account's when they
differ: read from CouchDB each time, that was one or two extra round trips per request
(README, Performance). Cached entries are invalidated by

* the continuous `_changes` feed of `accounts`: every account write — ours, another
  instance's, the CLI's, KAZOO's — updates the copy there *after* the authoritative doc
  in the account's own database (stores/accounts.py), so a read that follows the change sees
  the new doc;
* this process's own AccountStore writes, at once, so a client sees its own change
  on its next request (read-your-writes);
* a TTL, the safety net for a write that skips the `accounts` copy;
* a lost feed: nothing is cached until it is back, since changes may have been missed.

Reads of the account's own database that come across its doc also answer for it
(numbers/did_index.py reads a written account's `_changes`): a doc they found, or found
unchanged since the revision cached, counts as read when they began. A first write into
an account therefore waits for its DID index read instead of reading the doc apart, and
an account written to again and again is not read again when its TTL runs out.

A read that started before an invalidation is not stored (the generation check), so a
slow read cannot put an old doc back after the change was seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from service import fast_json
from service.couchdb.change_feed import FeedHandlers, follow_forever
from service.couchdb.client import CouchClient
from service.kazoo.ids import ACCOUNTS_DB

Json = dict[str, Any]
Loader = Callable[[str], Awaitable[Json | None]]
# The read of an account's database under way that will pass its doc on, if any.
ReadUnderWay = Callable[[str], "asyncio.Future[None] | None"]

# CouchDB (and the embedded server) send the feed's response headers with its first
# line, so the heartbeat also bounds how long after start-up the cache is in use; and a
# feed silent for three heartbeats is taken for lost.
HEARTBEAT_SECONDS = 1.0


@dataclass(frozen=True)
class _Entry:
    # The doc as JSON: each reader gets its own copy by decoding it, several times
    # faster than copy.deepcopy (it was a tenth of a cached GET's CPU). None: no such
    # account (also worth remembering).
    raw: bytes | None
    fetched_at: float
    rev: str | None = None

    @classmethod
    def of(cls, doc: Json | None, fetched_at: float) -> _Entry:
        if doc is None:
            return cls(None, fetched_at)
        rev = doc.get("_rev")
        return cls(fast_json.dumps(doc), fetched_at, rev if isinstance(rev, str) else None)

    def doc(self) -> Json | None:
        return None if self.raw is None else dict(fast_json.loads(self.raw))


@dataclass(frozen=True)
class _Mark:
    generation: int
    started: float


class AccountCache:
    """`get(account_id)` answers like `AccountStore.get`, from memory when it can."""

    def __init__(
        self,
        load: Loader,
        client: CouchClient,
        *,
        ttl: float,
        max_entries: int = 10_000,
    ) -> None:
        self._load = load
        self._client = client
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._generation = 0
        # True while the feed is connected: only then can an entry be trusted.
        self._following = False
        self._task: asyncio.Task[None] | None = None
        self.read_under_way: ReadUnderWay | None = None

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    @property
    def following(self) -> bool:
        return self._following

    @property
    def generation(self) -> int:
        """Bumped by every invalidation: a read that spans a bump is not kept."""
        return self._generation

    async def get(self, account_id: str) -> Json | None:
        """The account doc (a copy the caller may change), or None if there is none."""
        entry = self._fresh(account_id)
        if entry is not None:
            return entry.doc()
        under_way = self.read_under_way(account_id) if self.read_under_way else None
        if under_way is not None and self._following:
            # Not shielded: its failure or cancellation is its own, then we read.
            await asyncio.wait([under_way])
            entry = self._fresh(account_id)
            if entry is not None:
                return entry.doc()
        generation = self._generation
        now = time.monotonic()
        doc = await self._load(account_id)
        if self._following and generation == self._generation:
            self._store(account_id, _Entry.of(doc, now))
        return doc

    def _fresh(self, account_id: str) -> _Entry | None:
        entry = self._entries.get(account_id)
        if entry is None or not self._following:
            return None
        if time.monotonic() - entry.fetched_at >= self._ttl:
            return None
        self._entries.move_to_end(account_id)
        return entry

    # -- what reads of the account's database found (numbers/did_index.py) ------------

    def reading(self) -> object:
        return _Mark(self._generation, time.monotonic())

    def seen(self, mark: object, account_id: str, doc: Json | None) -> None:
        started = self._still_valid(mark)
        if started is None:
            return
        entry = self._entries.get(account_id)
        if entry is None or entry.fetched_at < started:
            self._store(account_id, _Entry.of(doc, started))

    def unchanged(self, mark: object, account_id: str, rev: str) -> None:
        started = self._still_valid(mark)
        entry = self._entries.get(account_id)
        if started is None or entry is None or entry.rev != rev:
            return
        if entry.fetched_at < started:
            self._entries[account_id] = replace(entry, fetched_at=started)

    def _still_valid(self, mark: object) -> float | None:
        """When the read marked began, if nothing was invalidated since."""
        if not isinstance(mark, _Mark) or not self.enabled or not self._following:
            return None
        return mark.started if mark.generation == self._generation else None

    def invalidate(self, account_id: str) -> None:
        self._generation += 1
        self._entries.pop(account_id, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    def _store(self, account_id: str, entry: _Entry) -> None:
        self._entries[account_id] = entry
        self._entries.move_to_end(account_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    # -- the feed ------------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._follow(), name="account-cache-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._lost()

    async def _follow(self) -> None:
        handlers = FeedHandlers(opened=self._opened, changed=self._changed, lost=self._lost)
        await follow_forever(self._client, ACCOUNTS_DB, handlers, heartbeat=HEARTBEAT_SECONDS)

    def _changed(self, change: Json) -> None:
        changed = change.get("id")
        if isinstance(changed, str):
            self.invalidate(changed)

    def _opened(self) -> None:
        # Reads that began before the feed was open may predate a change it will not
        # replay (it starts at "now"): the generation bump keeps them out.
        self.clear()
        self._following = True

    def _lost(self) -> None:
        self._following = False
        self.clear()
