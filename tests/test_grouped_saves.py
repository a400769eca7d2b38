"""Saves into one database that are ready at the same moment go as one `_bulk_docs`
(service/couchdb/grouped_saves.py), and each still gets what its own PUT would have:
its revision, a conflict, or the request's failure. A save alone is a PUT, a big doc
goes alone, and a request refused as too large is sent again doc by doc."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from faultproxy import FaultProxy

from service.couchdb.client import CouchClient, CouchFault, DocumentConflict, SavedDoc
from service.couchdb.grouped_saves import GROUPED_DOC_BYTES, GroupedSaves


@dataclass
class Scratch:
    """A new database, and grouped saves writing to it through the fault proxy."""

    db: str
    saves: GroupedSaves
    client: CouchClient


@pytest_asyncio.fixture
async def scratch(couch: CouchClient, proxy: FaultProxy) -> AsyncIterator[Scratch]:
    db = f"grouped_saves_{secrets.token_hex(4)}"
    await couch.ensure_db(db)
    async with CouchClient(proxy.url, timeout=30) as through_proxy:
        yield Scratch(db, GroupedSaves(through_proxy), through_proxy)
    proxy.clear()


def _requests(proxy: FaultProxy, since: int, db: str) -> tuple[int, int]:
    """(`_bulk_docs` requests, doc PUTs) into `db` seen since `since`."""
    seen = proxy.seen[since:]
    bulk = sum(1 for method, path in seen if method == "POST" and f"{db}/_bulk_docs" in path)
    puts = sum(1 for method, path in seen if method == "PUT" and f"/{db}/" in path)
    return bulk, puts


async def test_saves_ready_together_go_in_one_request_and_each_gets_its_own_revision(
    couch: CouchClient, proxy: FaultProxy, scratch: Scratch
) -> None:
    docs = [{"_id": f"doc{n}", "n": n, "name": f"trunk {n}"} for n in range(12)]
    start = len(proxy.seen)
    saved = await asyncio.gather(*(scratch.saves.save(scratch.db, doc) for doc in docs))
    assert _requests(proxy, start, scratch.db) == (1, 0)
    for doc, answer in zip(docs, saved, strict=True):
        assert answer.id == doc["_id"] and answer.rev.startswith("1-")
        stored = await couch.get_doc(scratch.db, doc["_id"])
        assert stored == {**doc, "_rev": answer.rev}


async def test_a_save_alone_is_a_put(proxy: FaultProxy, scratch: Scratch) -> None:
    start = len(proxy.seen)
    saved = await scratch.saves.save(scratch.db, {"_id": "alone"})
    assert saved.rev.startswith("1-")
    assert _requests(proxy, start, scratch.db) == (0, 1)


async def test_a_stale_revision_among_others_is_a_conflict_and_the_others_are_saved(
    couch: CouchClient, scratch: Scratch
) -> None:
    first = await couch.put_doc(scratch.db, {"_id": "edited", "v": 1})
    second = await couch.put_doc(scratch.db, {"_id": "edited", "v": 2, "_rev": first.rev})
    stale = {"_id": "edited", "v": 3, "_rev": first.rev}
    others = [{"_id": f"other{n}"} for n in range(3)]
    outcomes = await asyncio.gather(
        *(scratch.saves.save(scratch.db, doc) for doc in [stale, *others]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], DocumentConflict)
    assert all(isinstance(outcome, SavedDoc) for outcome in outcomes[1:])
    assert (await couch.get_doc(scratch.db, "edited"))["_rev"] == second.rev


async def test_two_saves_of_one_id_at_once_get_one_revision_and_one_conflict(
    couch: CouchClient, scratch: Scratch
) -> None:
    outcomes = await asyncio.gather(
        scratch.saves.save(scratch.db, {"_id": "twice", "by": 1}),
        scratch.saves.save(scratch.db, {"_id": "twice", "by": 2}),
        return_exceptions=True,
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == [
        "DocumentConflict",
        "SavedDoc",
    ]
    winner = 1 if isinstance(outcomes[0], SavedDoc) else 2
    assert (await couch.get_doc(scratch.db, "twice"))["by"] == winner


async def test_an_update_that_conflicts_with_its_own_landed_write_is_saved(
    couch: CouchClient, scratch: Scratch
) -> None:
    """A balancer resending the request makes CouchDB apply it once and refuse the copy:
    the copy's conflict row is answered with the revision that landed, as a PUT is."""
    first = await couch.put_doc(scratch.db, {"_id": "resent", "v": 1})
    update = {"_id": "resent", "v": 2, "_rev": first.rev}
    landed = await couch.put_doc(scratch.db, dict(update))
    row = {"id": "resent", "error": "conflict", "reason": "Document update conflict."}
    assert await scratch.client.saved_from_row(scratch.db, update, row) == landed
    other = {"_id": "resent", "v": 3, "_rev": first.rev}
    with pytest.raises(DocumentConflict):
        await scratch.client.saved_from_row(scratch.db, other, row)


async def test_a_big_doc_is_put_on_its_own(
    couch: CouchClient, proxy: FaultProxy, scratch: Scratch
) -> None:
    big = {"_id": "big", "padding": "x" * (GROUPED_DOC_BYTES + 1)}
    small = [{"_id": f"small{n}"} for n in range(2)]
    start = len(proxy.seen)
    saved = await asyncio.gather(*(scratch.saves.save(scratch.db, doc) for doc in [big, *small]))
    assert _requests(proxy, start, scratch.db) == (1, 1)
    assert (await couch.get_doc(scratch.db, "big"))["_rev"] == saved[0].rev


async def test_a_request_refused_as_too_large_is_sent_again_doc_by_doc(
    couch: CouchClient, proxy: FaultProxy, scratch: Scratch
) -> None:
    proxy.inject(
        "respond",
        method="POST",
        path_contains=f"{scratch.db}/_bulk_docs",
        status=413,
        body=b'{"error":"document_too_large","reason":"doc1"}',
    )
    docs = [{"_id": f"doc{n}"} for n in range(3)]
    start = len(proxy.seen)
    saved = await asyncio.gather(*(scratch.saves.save(scratch.db, doc) for doc in docs))
    assert _requests(proxy, start, scratch.db) == (1, 3)
    for doc, answer in zip(docs, saved, strict=True):
        assert (await couch.get_doc(scratch.db, doc["_id"]))["_rev"] == answer.rev


async def test_a_failed_request_fails_every_save_in_it_and_the_next_ones_go_through(
    couch: CouchClient, proxy: FaultProxy, scratch: Scratch
) -> None:
    bulk = f"{scratch.db}/_bulk_docs"
    proxy.inject("respond", method="POST", path_contains=bulk, status=500)
    failed = await asyncio.gather(
        *(scratch.saves.save(scratch.db, {"_id": f"lost{n}"}) for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, CouchFault) for outcome in failed)
    saved = await asyncio.gather(
        *(scratch.saves.save(scratch.db, {"_id": f"kept{n}"}) for n in range(3))
    )
    assert all(answer.rev.startswith("1-") for answer in saved)
    rows = (await couch.all_docs(scratch.db))["rows"]
    assert [row["id"] for row in rows] == ["kept0", "kept1", "kept2"]
