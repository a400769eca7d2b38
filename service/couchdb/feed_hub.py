"""One `_changes` feed per database, shared by every cache that follows it.

The read cache and the DID index both follow the account databases written to. Two
continuous feeds on one database cost CouchDB (the embedded server especially) a
quarter of its write throughput; one feed, with docs when any follower needs them,
costs less and tells both the same thing at the same moment.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from service.couchdb.change_feed import FeedHandlers, follow_forever, wait_stopped
from service.couchdb.client import CouchClient

Json = dict[str, Any]


@dataclass
class _SharedFeed:
    db: str
    include_docs: bool
    followers: dict[int, FeedHandlers] = field(default_factory=dict)
    is_open: bool = False
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class Subscription:
    db: str
    key: int


class FeedHub:
    def __init__(self, client: CouchClient, *, heartbeat: float) -> None:
        self._client = client  # one held-open connection per followed database
        self._heartbeat = heartbeat
        self._feeds: dict[str, _SharedFeed] = {}
        self._keys = itertools.count()

    def subscribe(self, db: str, handlers: FeedHandlers, *, include_docs: bool) -> Subscription:
        """`handlers` are told of `db`'s changes from the feed's next opening on (at once
        when it is open already: every later change reaches them)."""
        feed = self._feeds.get(db)
        if feed is None:
            feed = self._feeds[db] = _SharedFeed(db, include_docs)
            self._start(feed)
        elif include_docs and not feed.include_docs:
            # Reopened with docs: its followers hear "lost" now and "opened" again soon.
            feed.include_docs = True
            self._restart(feed)
        subscription = Subscription(db, next(self._keys))
        feed.followers[subscription.key] = handlers
        if feed.is_open:
            handlers.opened()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        feed = self._feeds.get(subscription.db)
        if feed is None or feed.followers.pop(subscription.key, None) is None:
            return
        if not feed.followers:
            del self._feeds[feed.db]
            if feed.task is not None:
                feed.task.cancel()

    def is_open(self, db: str) -> bool:
        feed = self._feeds.get(db)
        return feed is not None and feed.is_open

    async def stop(self) -> None:
        tasks = [feed.task for feed in self._feeds.values() if feed.task is not None]
        self._feeds.clear()
        await wait_stopped(tasks)

    def _start(self, feed: _SharedFeed) -> None:
        handlers = FeedHandlers(
            opened=lambda: self._opened(feed),
            changed=lambda row: self._changed(feed, row),
            lost=lambda: self._lost(feed),
        )
        feed.task = asyncio.create_task(
            follow_forever(
                self._client,
                feed.db,
                handlers,
                heartbeat=self._heartbeat,
                include_docs=feed.include_docs,
            ),
            name=f"changes feed {feed.db}",
        )

    def _restart(self, feed: _SharedFeed) -> None:
        if feed.task is not None:
            feed.task.cancel()
        self._lost(feed)
        self._start(feed)

    # A follower may unsubscribe while being told: each list is copied first.

    def _opened(self, feed: _SharedFeed) -> None:
        feed.is_open = True
        for handlers in list(feed.followers.values()):
            handlers.opened()

    def _changed(self, feed: _SharedFeed, row: Json) -> None:
        for handlers in list(feed.followers.values()):
            handlers.changed(row)

    def _lost(self, feed: _SharedFeed) -> None:
        feed.is_open = False
        for handlers in list(feed.followers.values()):
            handlers.lost()
