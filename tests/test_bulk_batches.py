"""Concurrent writers of one database share `_bulk_docs` requests
(service/couchdb/bulk_batches.py): each gets exactly its own rows, a second writer of
one id in the same moment is answered by CouchDB (a conflict), and a failed request
fails every writer in it, never silently."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from faultproxy import FaultProxy

from service.couchdb.bulk_batches import MAX_DOCS, BulkBatches
from service.couchdb.client import CouchClient, CouchError


@dataclass
class Scratch:
    """A new database, and batches writing to it through the fault proxy."""

    db: str
    batches: BulkBatches


@pytest_asyncio.fixture
async def scratch(couch: CouchClient, proxy: FaultProxy) -> AsyncIterator[Scratch]:
    db = f"bulk_batches_{secrets.token_hex(4)}"
    await couch.ensure_db(db)
    async with CouchClient(proxy.url, timeout=30) as through_proxy:
        yield Scratch(db, BulkBatches(through_proxy, db))


def _bulk_requests(proxy: FaultProxy, db: str) -> int:
    return sum(1 for method, path in proxy.seen if method == "POST" and f"{db}/_bulk_docs" in path)


async def test_concurrent_writers_share_requests_and_get_their_own_rows(
    couch: CouchClient, proxy: FaultProxy, scratch: Scratch
) -> None:
    db = scratch.db
    writers = [[{"_id": f"w{n}-{k}", "n": n} for k in range(3)] for n in range(16)]
    answers = await asyncio.gather(*(scratch.batches.write(docs) for docs in writers))
    for docs, rows in zip(writers, answers, strict=True):
        assert [row["id"] for row in rows] == [doc["_id"] for doc in docs]
        assert all(row["rev"].startswith("1-") for row in rows)
    stored = await couch.get_docs(db, [doc["_id"] for docs in writers for doc in docs])
    assert len(stored) == 48
    # Sixteen writers, far fewer requests: the first goes alone, the rest wait for it.
    assert _bulk_requests(proxy, db) <= 3


async def test_two_writers_of_one_id_get_one_creation_and_one_conflict(
    couch: CouchClient, scratch: Scratch
) -> None:
    write = scratch.batches.write
    first, second = await asyncio.gather(
        write([{"_id": "same", "by": 1}]), write([{"_id": "same", "by": 2}])
    )
    assert "rev" in first[0]
    assert second[0].get("error") == "conflict"
    assert (await couch.get_doc(scratch.db, "same"))["by"] == 1


async def test_a_failed_request_fails_each_writer_in_it_and_the_next_ones_go_through(
    couch: CouchClient, proxy: FaultProxy, scratch: Scratch
) -> None:
    bulk = f"{scratch.db}/_bulk_docs"
    proxy.inject("respond", method="POST", path_contains=bulk, status=500, times=1)
    try:
        failed = await asyncio.gather(
            *(scratch.batches.write([{"_id": f"lost{n}"}]) for n in range(4)),
            return_exceptions=True,
        )
    finally:
        proxy.clear()
    assert all(isinstance(outcome, CouchError) for outcome in failed)
    rows = await scratch.batches.write([{"_id": "after"}])
    assert "rev" in rows[0]
    with pytest.raises(CouchError):
        await couch.get_doc(scratch.db, "lost0")


async def test_a_write_bigger_than_a_request_goes_in_parts_answered_in_order(
    proxy: FaultProxy, scratch: Scratch
) -> None:
    docs = [{"_id": f"big{n:05d}"} for n in range(2 * MAX_DOCS + 10)]
    write = scratch.batches.write
    big, small = await asyncio.gather(write(docs), write([{"_id": "small"}]))
    assert [row["id"] for row in big] == [doc["_id"] for doc in docs]
    assert all("rev" in row for row in big) and "rev" in small[0]
    # Three parts, the small write with one of them or (none having room) on its own.
    assert _bulk_requests(proxy, scratch.db) in (3, 4)
