"""Saves of single docs into one database that come at the same moment, sent together.

A save is one request, and a request costs more than the doc it carries: Apache CouchDB
commits every request to disk before it answers, and the embedded server spends as much
on a request's HTTP, routing and admin check as on writing its doc. Under load, the
writes of one account reach their save together (their DID checks share one read and
end at once, numbers/did_guard.py): the saves into one database that are ready in the
same turn of the event loop go as one `_bulk_docs` request. A save that is alone in its
turn is a plain `PUT`, as before, so a lone writer waits for nothing and gets the PUT's
every safeguard (the client's resend over a dropped kept-alive connection among them).
Groups never wait for each other: a slow request holds up only the saves in it.
README, "Writes", has the figures.

Each save answers what its own `PUT /{db}/{id}` would: its new revision, a conflict
(after the same look at whether the conflicting revision is its own write), too large,
or the request's failure, whose outcome is then unknown to every save in it, as a
PUT's is. `_bulk_docs` without `new_edits=false` checks each doc's `_rev` as a PUT does,
and one doc's refusal does not stop the others. Two saves of one id in one turn go in
separate requests, so that CouchDB, not the batch, decides between them.

A doc bigger than `GROUPED_DOC_BYTES` is PUT on its own: it would make the request it
joins as slow as itself. If CouchDB refuses a whole request as too large (a
`max_document_size` set below that bound), nothing of it was written, and each of its
docs is PUT on its own, which gives each its own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from service import fast_json
from service.couchdb.client import CouchClient, CouchError, SavedDoc

Json = dict[str, Any]

# A trunk with a few hundred DIDs; a bigger doc goes alone.
GROUPED_DOC_BYTES = 64 * 1024


@dataclass
class _Save:
    doc: Json
    encoded: bytes
    answer: asyncio.Future[SavedDoc]


@dataclass
class _Group:
    saves: list[_Save] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


class GroupedSaves:
    """`save(db, doc)`: what `CouchClient.put_doc(db, doc)` answers, sent with the saves
    into `db` that are ready at the same moment."""

    def __init__(self, client: CouchClient) -> None:
        self._client = client
        # db -> the saves of this turn, sent once the turn's other ready tasks have run.
        self._forming: dict[str, _Group] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def save(self, db: str, doc: Json) -> SavedDoc:
        encoded = fast_json.dumps(doc)
        doc_id = str(doc["_id"])
        if len(encoded) > GROUPED_DOC_BYTES:
            return await self._client.put_doc(db, doc, encoded=encoded)
        loop = asyncio.get_running_loop()
        group = self._forming.get(db)
        if group is None or doc_id in group.ids:
            group = _Group()
            self._forming[db] = group
            # call_soon runs after every callback already ready, so the tasks woken in
            # this turn (the other writers of the account) join the group first.
            loop.call_soon(self._send, db, group)
        answer: asyncio.Future[SavedDoc] = loop.create_future()
        # A writer that went away never reads its answer: seen here, not logged as lost.
        answer.add_done_callback(_retrieved)
        group.saves.append(_Save(doc, encoded, answer))
        group.ids.add(doc_id)
        # Shielded: a writer that goes away must not cancel a request others share.
        return await asyncio.shield(answer)

    def _send(self, db: str, group: _Group) -> None:
        if self._forming.get(db) is group:
            del self._forming[db]
        task = asyncio.get_running_loop().create_task(
            self._request(db, group.saves), name=f"grouped saves {db}"
        )
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _request(self, db: str, saves: list[_Save]) -> None:
        if len(saves) == 1:
            await self._put_alone(db, saves[0])
            return
        try:
            rows = await self._client.bulk_docs(
                db, [save.doc for save in saves], encoded=[save.encoded for save in saves]
            )
            if len(rows) != len(saves):
                raise CouchError(f"POST /{db}/_bulk_docs: {len(rows)} rows for {len(saves)}")
        except CouchError as exc:
            if exc.status == 413:
                await asyncio.gather(*(self._put_alone(db, save) for save in saves))
                return
            _fail(saves, exc)
            return
        except BaseException as exc:
            _fail(saves, exc)
            raise
        answers = (self._answer(db, save, row) for save, row in zip(saves, rows, strict=True))
        await asyncio.gather(*answers)

    async def _put_alone(self, db: str, save: _Save) -> None:
        await _settle(save, self._client.put_doc(db, save.doc, encoded=save.encoded))

    async def _answer(self, db: str, save: _Save, row: Json) -> None:
        await _settle(save, self._client.saved_from_row(db, save.doc, row))


async def _settle(save: _Save, outcome: Awaitable[SavedDoc]) -> None:
    """Gives `save` the outcome's revision or failure; a cancellation goes on up."""
    try:
        saved = await outcome
    except BaseException as exc:
        _fail([save], exc)
        if not isinstance(exc, Exception):
            raise
        return
    if not save.answer.done():
        save.answer.set_result(saved)


def _retrieved(answer: asyncio.Future[SavedDoc]) -> None:
    if not answer.cancelled():
        answer.exception()


def _fail(saves: list[_Save], exc: BaseException) -> None:
    for save in saves:
        if save.answer.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            save.answer.cancel()
        else:
            save.answer.set_exception(exc)
