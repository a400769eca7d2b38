"""`_bulk_docs` requests shared by the concurrent writers of one database.

Apache CouchDB commits every request to disk before it answers, so a request costs
about the same for one doc as for a hundred: concurrent writers of small docs (the DID
claims, numbers/did_claims.py) get their docs into the next request rather than one
request each. One request is under way at a time; what comes meanwhile waits for it
to end and goes in the following one. A request never carries one id twice (CouchDB
would refuse one of the two as a conflict of its own): a writer whose id is already in
the batch goes into the one after. A writer of more than `MAX_DOCS` docs has them sent
`MAX_DOCS` at a time, so that no request outlasts the client's timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from service.couchdb.client import CouchClient, CouchError

Json = dict[str, Any]

# Docs per request at most: Apache CouchDB writes ~10,000 small docs a second here, so a
# request stays well inside the client's timeout (a 50,000-DID trunk's claims are 25
# requests, and other writers' claims fit in between).
MAX_DOCS = 2_000


@dataclass
class _Entry:
    docs: list[Json]
    answer: asyncio.Future[list[Json]]

    def ids(self) -> set[str]:
        return {str(doc["_id"]) for doc in self.docs}


class BulkBatches:
    """`write(docs)`: the rows of `_bulk_docs` for `docs`, sent with other writers' docs."""

    def __init__(self, client: CouchClient, db: str, *, linger: float = 0.0) -> None:
        # linger: how long a batch waits for more docs before it is sent; 0 sends it as
        # soon as the request before it has ended.
        self._client = client
        self._db = db
        self._linger = linger
        self._pending: list[_Entry] = []
        self._sending: asyncio.Task[None] | None = None

    async def write(self, docs: list[Json]) -> list[Json]:
        rows: list[Json] = []
        for start in range(0, len(docs), MAX_DOCS):
            rows += await self._write_part(docs[start : start + MAX_DOCS])
        return rows

    async def _write_part(self, docs: list[Json]) -> list[Json]:
        answer: asyncio.Future[list[Json]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Entry(docs, answer))
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_all(), name=f"bulk docs {self._db}")
        return await answer

    def cancel(self) -> None:
        if self._sending is not None:
            self._sending.cancel()

    async def _send_all(self) -> None:
        try:
            while self._pending:
                # Let the writers that are running now join (or wait the linger).
                await asyncio.sleep(self._linger)
                await self._send(self._next_batch())
        except asyncio.CancelledError:
            for entry in self._pending:
                entry.answer.cancel()
            self._pending.clear()
            raise
        finally:
            self._sending = None

    def _next_batch(self) -> list[_Entry]:
        batch: list[_Entry] = []
        taken: set[str] = set()
        waiting: list[_Entry] = []
        for entry in self._pending:
            ids = entry.ids()
            if entry.answer.done():
                continue  # its writer went away before it was sent
            if taken & ids or (batch and len(taken) + len(ids) > MAX_DOCS):
                waiting.append(entry)
            else:
                batch.append(entry)
                taken |= ids
        self._pending = waiting
        return batch

    async def _send(self, batch: list[_Entry]) -> None:
        docs = [doc for entry in batch for doc in entry.docs]
        if not docs:
            return
        try:
            rows = await self._client.bulk_docs(self._db, docs)
            if len(rows) != len(docs):
                raise CouchError(f"POST /{self._db}/_bulk_docs: {len(rows)} rows for {len(docs)}")
        except asyncio.CancelledError:
            for entry in batch:
                entry.answer.cancel()
            raise
        except Exception as exc:
            for entry in batch:
                if not entry.answer.done():
                    entry.answer.set_exception(exc)
            return
        start = 0
        for entry in batch:
            end = start + len(entry.docs)
            if not entry.answer.done():
                entry.answer.set_result(rows[start:end])
            start = end
