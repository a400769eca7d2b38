"""Which number databases exist, read afresh and shared by concurrent writers.

A trunk's DIDs fall in many `numbers/+1NPA` databases, most of which do not exist; one
listing tells which do, instead of a read of each (on Apache CouchDB mostly answered by
the info of its `_dbs`: couchdb/db_listing.py). The listing must be fresh:
a number database replicated in from KAZOO a moment ago holds owners a write must see
(docs/kazoo-compatibility.md §11.3). Concurrent writers share the next listing
(couchdb/fresh_reads.py), so under load it costs one request per round trip rather than
one per write. The whole `numbers/` range is read: it is the union of every writer's
range and stays small, one database per country code and area (rules.number_db).

Number databases are created, hardly ever removed: the databases the last listing named
can be read while the fresh listing is under way (`known`), and only those it adds are
read after it. A database removed meanwhile reads as empty, as it would after.
"""

from __future__ import annotations

import asyncio

from service.couchdb.client import CouchClient
from service.couchdb.db_listing import DatabaseListing
from service.couchdb.fresh_reads import FreshReads
from service.numbers.rules import NUMBERS_DB_PREFIX

# After every `numbers/…` name in CouchDB's collation of database names.
_RANGE_END = NUMBERS_DB_PREFIX + "\ufff0"


class NumberDbs:
    def __init__(self, client: CouchClient) -> None:
        self.client = client
        self._database_listing = DatabaseListing(client)
        self._listings: FreshReads[frozenset[str]] = FreshReads(self._list, "number databases")
        self._last: frozenset[str] = frozenset()

    def known(self, dbs: set[str]) -> set[str]:
        """The databases of `dbs` that the last listing named (none before the first)."""
        return dbs & self._last

    async def existing(self, dbs: set[str], *, not_before: float | None = None) -> set[str]:
        """The databases of `dbs` that existed when this call began (or at `not_before`),
        or later."""
        if len(dbs) <= 1:
            # One read of that database tells as much as a listing would.
            return dbs
        names = await asyncio.shield(self._listings.fresh(not_before))
        return dbs & names

    def read_ahead(self) -> None:
        """Starts a listing now, for `existing` calls to come."""
        self._listings.read_ahead()

    async def _list(self) -> frozenset[str]:
        names = await self._database_listing.names(NUMBERS_DB_PREFIX, _RANGE_END)
        self._last = names
        return names
