"""Following one database's continuous `_changes` feed for as long as the process wants.

Caches that keep CouchDB data in memory (cache/accounts.py, cache/reads.py) are only as
good as the feed that tells them what changed. This module owns the part they share:
open the feed at "now", hand over every change, notice when it is lost, and open it
again with a back-off — so a cache knows exactly when it may trust what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.couchdb.client import CouchClient, CouchError

log = logging.getLogger(__name__)

Json = dict[str, Any]

# Waits between attempts to reopen a lost feed; the last one repeats.
RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass
class FeedHandlers:
    """What a follower is told; each runs synchronously on the event loop."""

    # The feed is open: every change from now on will be delivered.
    opened: Callable[[], None]
    changed: Callable[[Json], None]
    # The feed is gone (CouchDB down, database deleted, connection cut): changes may be
    # missed until `opened` is called again.
    lost: Callable[[], None]


async def wait_stopped(tasks: list[asyncio.Task[None]]) -> None:
    """Waits for followers that were cancelled to finish (what `stop()` of a cache needs)."""
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def follow_forever(
    client: CouchClient,
    db: str,
    handlers: FeedHandlers,
    *,
    heartbeat: float,
    include_docs: bool = False,
) -> None:
    """Follows `db` until cancelled; never raises anything but CancelledError."""
    failures = 0
    connected = False

    def opened() -> None:
        nonlocal connected, failures
        connected, failures = True, 0
        handlers.opened()

    while True:
        try:
            async for change in client.follow_changes(
                db, heartbeat=heartbeat, opened=opened, include_docs=include_docs
            ):
                handlers.changed(change)
        except CouchError as exc:
            # Once per outage, not once per retry.
            if connected or failures == 0:
                log.warning("changes feed lost", extra={"couch_db": db, "fault": str(exc)})
        except Exception:
            # A bug in a handler: the follower must not die with the cache still trusting
            # it, so this too counts as a lost feed.
            log.exception("changes feed handler failed", extra={"couch_db": db})
        connected = False
        handlers.lost()
        await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
        failures += 1
