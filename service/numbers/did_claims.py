"""Claims that make CouchDB itself refuse the second writer of a number, across instances.

Several service instances on one CouchDB each check a write's new DIDs against what is
stored; two writes of the same new number through two instances can both pass that
check before either is saved. So, before the check, each write creates one claim doc
per number it adds, `<account id>:<E.164>` in `connectivity_did_claims`: CouchDB
accepts only one creation of an id, and the second writer learns who holds it.

A claim lives from the check until the save has been answered, then it is deleted (off
the answer's path, with the other deletions of the next `RELEASE_LINGER` seconds). One
left by an instance that died in between blocks the number for at most `expiry`
seconds: an older claim is taken over with its revision (and if two writers race for
that, CouchDB again lets only one through). The expiry must exceed the longest a write
can take between its check and its save (docs/kazoo-compatibility.md §11.3).

Concurrent writers' claims go to CouchDB in one `_bulk_docs` (couchdb/bulk_batches.py):
Apache CouchDB commits each request to disk, so one request for sixteen writers costs
about what one writer's did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from service.couchdb.bulk_batches import BulkBatches
from service.couchdb.client import CouchClient, CouchError, DatabaseNotFound
from service.stores.accounts import ADMIN_ONLY_SECURITY

log = logging.getLogger(__name__)

Json = dict[str, Any]

CLAIMS_DB = "connectivity_did_claims"

# Deletions wait this long for others to go with them. A claim outlives its write by at
# most this (plus a round trip): only a rival write of the same number waits for it.
RELEASE_LINGER = 0.02


@dataclass
class Claimed:
    """What `claim` got: the claims now ours (id -> revision) and the numbers another
    write holds (E.164 -> that write's connectivity doc id)."""

    mine: dict[str, str] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)

    def all_first(self) -> bool:
        """Whether every claim of ours is the first its id ever had (revision 1): no
        write ever claimed these numbers before, so none can have saved them since a
        read that began before this claim (numbers/did_guard.py reads side by side)."""
        return not self.held and all(rev.startswith("1-") for rev in self.mine.values())


class DidClaims:
    def __init__(self, client: CouchClient, *, expiry: float) -> None:
        self._client = client
        self._expiry = expiry
        self._claims = BulkBatches(client, CLAIMS_DB)
        self._releases = BulkBatches(client, CLAIMS_DB, linger=RELEASE_LINGER)
        # Deletions under way, kept so that they are not collected before they finish.
        self._releasing: set[asyncio.Task[None]] = set()

    async def ensure_database(self) -> None:
        if await self._client.ensure_db(CLAIMS_DB):
            await self._client.put_security(CLAIMS_DB, ADMIN_ONLY_SECURITY)

    async def claim(self, account_id: str, doc_id: str, numbers: set[str]) -> Claimed:
        claimed = Claimed()
        if not numbers:
            return claimed
        now = time.time()
        ids = {f"{account_id}:{number}": number for number in sorted(numbers)}
        docs = [_claim_doc(claim_id, number, doc_id, now) for claim_id, number in ids.items()]
        contested = []
        try:
            rows = await self._claims.write(docs)
        except DatabaseNotFound:
            # CouchDB was unreachable when the service started, or someone removed it.
            await self.ensure_database()
            rows = await self._claims.write(docs)
        for row in rows:
            if "rev" in row and not row.get("error"):
                claimed.mine[row["id"]] = row["rev"]
            elif row.get("id") in ids:
                contested.append(row["id"])
        if contested:
            await self._contest(contested, ids, doc_id, now, claimed)
        return claimed

    async def _contest(
        self, contested: list[str], ids: dict[str, str], doc_id: str, now: float, claimed: Claimed
    ) -> None:
        """Claims that already exist: ours from an earlier attempt of the same doc, held
        by a write in flight, or left behind past their expiry (taken over)."""
        current = await self._client.get_docs(CLAIMS_DB, contested)
        takeovers = []
        for claim_id in contested:
            existing = current.get(claim_id)
            number = ids[claim_id]
            if existing is None:
                # Deleted between the two requests: whoever held it is done with it.
                takeovers.append(_claim_doc(claim_id, number, doc_id, now))
                continue
            holder = existing.get("connectivity_id")
            claimed_at = existing.get("claimed_at")
            fresh = isinstance(claimed_at, int | float) and now - claimed_at < self._expiry
            if holder != doc_id and fresh:
                claimed.held[number] = str(holder)
                continue
            takeover = _claim_doc(claim_id, number, doc_id, now)
            takeover["_rev"] = existing["_rev"]
            takeovers.append(takeover)
        if not takeovers:
            return
        lost = []
        for row in await self._claims.write(takeovers):
            if "rev" in row and not row.get("error"):
                claimed.mine[row["id"]] = row["rev"]
            else:
                lost.append(row.get("id"))
        if lost:
            # Another writer took them over first: it holds them now.
            again = await self._client.get_docs(CLAIMS_DB, [i for i in lost if isinstance(i, str)])
            for claim_id in lost:
                holder = (again.get(claim_id) or {}).get("connectivity_id", "another write")
                claimed.held[ids[claim_id]] = str(holder)

    def release(self, mine: dict[str, str]) -> None:
        """Deletes these claims in the background; one that fails expires by itself."""
        if not mine:
            return
        task = asyncio.create_task(self._delete(dict(mine)), name="did claims release")
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _delete(self, mine: dict[str, str]) -> None:
        docs = [{"_id": claim_id, "_rev": rev, "_deleted": True} for claim_id, rev in mine.items()]
        try:
            await self._releases.write(docs)
        except CouchError as exc:
            log.warning("did claims not released, they expire", extra={"fault": str(exc)})

    async def stop(self) -> None:
        if self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        self._claims.cancel()


def _claim_doc(claim_id: str, number: str, doc_id: str, now: float) -> Json:
    return {"_id": claim_id, "number": number, "connectivity_id": doc_id, "claimed_at": now}
