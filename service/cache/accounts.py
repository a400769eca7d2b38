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

A read that started before an invalidation is not stored (the generation check), so a
slow read cannot put an old doc back after the change was seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from service import fast_json
from service.couchdb.change_feed import FeedHandlers, follow_forever
from service.couchdb.client import CouchClient
from service.kazoo.ids import ACCOUNTS_DB

Json = dict[str, Any]
Loader = Callable[[str], Awaitable[Json | None]]

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

    def doc(self) -> Json | None:
        return None if self.raw is None else dict(fast_json.loads(self.raw))


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

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    @property
    def following(self) -> bool:
        return self._following

    async def get(self, account_id: str) -> Json | None:
        """The account doc (a copy the caller may change), or None if there is none."""
        entry = self._entries.get(account_id)
        now = time.monotonic()
        if entry is not None and self._following and now - entry.fetched_at < self._ttl:
            self._entries.move_to_end(account_id)
            return entry.doc()
        generation = self._generation
        doc = await self._load(account_id)
        if self._following and generation == self._generation:
            raw = None if doc is None else fast_json.dumps(doc)
            self._store(account_id, _Entry(raw, now))
        return doc

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
