"""Claims that make CouchDB itself refuse the second writer of a number, across instances.

Several service instances on one CouchDB each check a write's new DIDs against what is
stored; two writes of the same new number through two instances can both pass that
check before either is saved. So, before the check, each write creates one claim doc
per number it adds, `<account id>:<E.164>` in `connectivity_did_claims`: CouchDB
accepts only one creation of an id, and the second writer learns who holds it.

A claim names its write: the connectivity doc, its database and the revision the write
started from (none for a create). Once that doc's revision has moved on, the write is
over and the stored docs say who routes the number, so the claim no longer holds
anything and the next writer of the number takes it over, with its revision (again
CouchDB lets one writer through). That is why the claim of a saved write stays where
it is: deleting it would be one more commit per number for nothing. A write that is
refused or fails deletes its claims (off the answer's path, with the other deletions of
the next `RELEASE_LINGER` seconds), and one left by an instance that died in between
blocks the number for at most `expiry` seconds, after which it is taken over too. The
expiry must exceed the longest a write can take between its check and its save
(docs/kazoo-compatibility.md §11.3).

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


@dataclass(frozen=True)
class ClaimingWrite:
    """The write a claim is for: its doc, where it is stored, and the revision it
    replaces (None for a create)."""

    db: str
    doc_id: str
    base_rev: str | None


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

    async def claim(self, account_id: str, write: ClaimingWrite, numbers: set[str]) -> Claimed:
        claimed = Claimed()
        if not numbers:
            return claimed
        now = time.time()
        ids = {f"{account_id}:{number}": number for number in sorted(numbers)}
        docs = [_claim_doc(claim_id, number, write, now) for claim_id, number in ids.items()]
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
            await self._contest(contested, ids, write, now, claimed)
        return claimed

    async def _contest(
        self,
        contested: list[str],
        ids: dict[str, str],
        write: ClaimingWrite,
        now: float,
        claimed: Claimed,
    ) -> None:
        """Claims that already exist: ours from an earlier write of the same doc, left
        by a write that is over (saved, or gone past its expiry), both taken over, or
        held by a write in flight."""
        current = await self._client.get_docs(CLAIMS_DB, contested)
        in_flight = await self._in_flight(
            [claim for claim in current.values() if claim.get("connectivity_id") != write.doc_id]
        )
        takeovers = []
        for claim_id in contested:
            existing = current.get(claim_id)
            number = ids[claim_id]
            takeover = _claim_doc(claim_id, number, write, now)
            if existing is not None:
                holder = existing.get("connectivity_id")
                claimed_at = existing.get("claimed_at")
                fresh = isinstance(claimed_at, int | float) and now - claimed_at < self._expiry
                if holder != write.doc_id and fresh and claim_id in in_flight:
                    claimed.held[number] = str(holder)
                    continue
                takeover["_rev"] = existing["_rev"]
            # else deleted between the two requests: whoever held it is done with it.
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

    async def _in_flight(self, claims: list[Json]) -> set[str]:
        """The ids of `claims` whose write may still be saved: its doc is still at the
        revision the write started from. A claim that does not say where its doc is
        counts as in flight (it holds until it expires)."""
        by_db: dict[str, list[Json]] = {}
        in_flight = set()
        for claim in claims:
            if isinstance(claim.get("db"), str) and isinstance(claim.get("connectivity_id"), str):
                by_db.setdefault(claim["db"], []).append(claim)
            else:
                in_flight.add(claim["_id"])
        for db, held in by_db.items():
            try:
                now_at = await self._client.revisions(db, [c["connectivity_id"] for c in held])
            except DatabaseNotFound:
                now_at = {}
            for claim in held:
                if now_at.get(claim["connectivity_id"]) == claim.get("base_rev"):
                    in_flight.add(claim["_id"])
        return in_flight

    def release(self, mine: dict[str, str]) -> None:
        """Deletes the claims of a write that was not saved, in the background; one that
        fails expires by itself."""
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


def _claim_doc(claim_id: str, number: str, write: ClaimingWrite, now: float) -> Json:
    return {
        "_id": claim_id,
        "number": number,
        "connectivity_id": write.doc_id,
        "db": write.db,
        "base_rev": write.base_rev,
        "claimed_at": now,
    }
