"""Which service instances write to this CouchDB: claims in CouchDB only while another does.

A DID claim in CouchDB (numbers/did_claims.py) costs a commit before every write that
adds numbers; it only protects against another instance's write of the same instant.
So each instance keeps an entry in one roster doc, `instances` in
`connectivity_did_claims`, rewritten every `beat` seconds: a counter that moves while
the instance lives, and `claiming`, its promise that it claims every number it adds and
has no write in flight that did not. An instance that finds no other live entry when
its own is written works *solo*: numbers are claimed in memory only.

Why no write through two instances can both add a number (docs/kazoo-compatibility.md
§11.3):

* The roster is one doc, so its revisions form one line. An instance goes solo only
  after writing `claiming: false` on top of the latest revision and finding no other
  live entry in it: an instance that registered before is in that revision (and counts
  as live until its counter has stood still for `lease` seconds); one that registers
  after sees `claiming: false`.
* A new instance adds no number until every live entry says `claiming: true` (those
  already claiming at its arrival, or solo ones once they have seen it, switched, and
  their solo writes have landed), or has stood still for `lease` seconds.
* A solo instance stays solo only `fence` seconds past its last roster write, and any
  instance adds numbers only while its last roster write is that recent. A write takes
  less than the claim expiry from its check to its save (the claims' own assumption), so
  an instance that others take for gone (`lease` = claim expiry + `fence`) has nothing in
  flight any more.

Clocks are never compared between machines: an entry's age is how long *this* instance
has seen its counter stand still. An instance that stops says goodbye (its entry goes);
the entry of one that died is dropped by the others after twice `lease`, and until its
lease ends a newly started instance waits before adding numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from service.couchdb.client import (
    CouchClient,
    CouchError,
    DatabaseNotFound,
    DocumentConflict,
    DocumentNotFound,
)
from service.kazoo.ids import new_id

log = logging.getLogger(__name__)

Json = dict[str, Any]

ROSTER_ID = "instances"
# Roster writes lost to another instance's, retried at once within one beat.
_ATTEMPTS = 5


@dataclass
class _Seen:
    beat: Any
    since: float  # monotonic time this instance first saw that counter


class InstanceRoster:
    def __init__(
        self,
        client: CouchClient,
        db: str,
        ensure_database: Callable[[], Awaitable[Any]],
        *,
        beat: float,
        claim_expiry: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = new_id()
        self._client = client
        self._db = db
        self._ensure_database = ensure_database
        self._beat = beat
        self.fence = 3 * beat
        self.lease = claim_expiry + self.fence
        self._clock = clock
        self._counter = 0
        self._solo = False
        self._solo_writes = 0
        self._last_written: float | None = None
        # Every other live entry says it claims (or there is none).
        self._all_claim = False
        self._seen: dict[str, _Seen] = {}
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- what a write asks ---------------------------------------------------------------

    def solo_write(self) -> bool:
        """Whether a write checked now may claim its numbers in memory only. If so, the
        caller reports its end with `solo_write_done`."""
        if self._solo and self._fresh():
            self._solo_writes += 1
            return True
        return False

    def solo_write_done(self) -> None:
        self._solo_writes -= 1
        if self._solo_writes == 0 and not self._solo:
            self._wake.set()  # the promise to claim can be written now

    def in_step(self) -> bool:
        """Whether a claim in CouchDB is enough right now (what `may_claim` waits for)."""
        return self._all_claim and self._fresh()

    async def may_claim(self, timeout: float) -> bool:
        """Waits until a claim in CouchDB is enough: every other live instance claims too
        and this one's entry is current. False if that did not happen in `timeout`."""
        deadline = self._clock() + timeout
        while not self.in_step():
            left = deadline - self._clock()
            if left <= 0:
                return False
            self._changed.clear()
            if not self._fresh():
                self._wake.set()  # a roster write is due now, not at the next beat
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, self._beat))
        return True

    @property
    def solo(self) -> bool:
        return self._solo

    def _fresh(self) -> bool:
        return self._last_written is not None and self._clock() - self._last_written < self.fence

    # -- the beat ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="instance roster")

    async def stop(self) -> None:
        """Stops beating and removes this instance's entry: the others need not wait for
        its lease to end."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._solo = False
        try:
            await self._rewrite(lambda entries: entries.pop(self.id, None))
        except CouchError as exc:
            log.warning("instance roster: goodbye not written", extra={"fault": str(exc)})

    async def _run(self) -> None:
        while True:
            # Cleared first: a wake-up asked for during the write gets one more.
            self._wake.clear()
            try:
                await self.beat()
            except CouchError as exc:
                # Not written: the fence ends solo work, and claims wait, until it is.
                log.warning("instance roster not written", extra={"fault": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._beat)

    async def beat(self) -> None:
        """One roster write: this instance's entry, and what the others' say."""
        started = self._clock()
        outcome: dict[str, Any] = {}

        def update(entries: Json) -> None:
            live = self._live_others(entries, started)
            going_solo = not live
            if live:
                self._solo = False  # from this moment every new write claims
            entries[self.id] = {
                "beat": self._counter + 1,
                "claiming": (not going_solo) and not self._solo and self._solo_writes == 0,
            }
            for gone in [k for k in entries if k != self.id and self._gone(k, started)]:
                del entries[gone]
            outcome.update(live=live, going_solo=going_solo)

        await self._rewrite(update)
        self._counter += 1
        self._last_written = started
        live: Json = outcome["live"]
        self._solo = outcome["going_solo"]
        self._all_claim = all(
            isinstance(entry, dict) and entry.get("claiming") is True for entry in live.values()
        )
        self._changed.set()

    def _live_others(self, entries: Json, now: float) -> Json:
        live = {}
        for instance_id, entry in entries.items():
            if instance_id == self.id:
                continue
            counter = entry.get("beat") if isinstance(entry, dict) else None
            seen = self._seen.get(instance_id)
            if seen is None or seen.beat != counter:
                seen = self._seen[instance_id] = _Seen(counter, now)
            if now - seen.since < self.lease:
                live[instance_id] = entry
        for forgotten in set(self._seen) - set(entries):
            del self._seen[forgotten]
        return live

    def _gone(self, instance_id: str, now: float) -> bool:
        seen = self._seen.get(instance_id)
        return seen is not None and now - seen.since >= 2 * self.lease

    async def _rewrite(self, update: Callable[[Json], Any]) -> None:
        """Read, change and write the roster, again from the top when another instance
        wrote it in between."""
        for attempt in range(_ATTEMPTS):
            try:
                doc = await self._client.get_doc(self._db, ROSTER_ID)
            except (DocumentNotFound, DatabaseNotFound):
                doc = {"_id": ROSTER_ID}
            entries = doc.get("instances")
            entries = dict(entries) if isinstance(entries, dict) else {}
            update(entries)
            doc["instances"] = entries
            try:
                await self._client.put_doc(self._db, doc)
                return
            except DocumentConflict:
                if attempt == _ATTEMPTS - 1:
                    raise
            except DatabaseNotFound:
                await self._ensure_database()
        raise DocumentConflict("instance roster busy", status=409)
