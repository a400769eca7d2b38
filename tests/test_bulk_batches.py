"""Concurrent writers of one database share `_bulk_docs` requests
(service/couchdb/bulk_batches.py): each gets exactly its own rows, a second writer of
one id in the same moment is answered by CouchDB (a conflict), and a failed request
fails every writer in it, never silently."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from faultproxy import FaultProxy

from service.couchdb.bulk_batches import MAX_DOCS, BulkBatches
from service.couchdb.client import CouchClient, CouchError


async def _scratch_db(couch: CouchClient) -> str:
    name = f"bulk_batches_{secrets.token_hex(4)}"
    await couch.ensure_db(name)
    return name


def _bulk_requests(proxy: FaultProxy, db: str) -> int:
    return sum(1 for method, path in proxy.seen if method == "POST" and f"{db}/_bulk_docs" in path)


async def test_concurrent_writers_share_requests_and_get_their_own_rows(
    couch: CouchClient, proxy: FaultProxy
) -> None:
    db = await _scratch_db(couch)
    async with CouchClient(proxy.url, timeout=30) as through_proxy:
        batches = BulkBatches(through_proxy, db)
        writers = [[{"_id": f"w{n}-{k}", "n": n} for k in range(3)] for n in range(16)]
        answers = await asyncio.gather(*(batches.write(docs) for docs in writers))
    for docs, rows in zip(writers, answers, strict=True):
        assert [row["id"] for row in rows] == [doc["_id"] for doc in docs]
        assert all(row["rev"].startswith("1-") for row in rows)
    stored = await couch.get_docs(db, [doc["_id"] for docs in writers for doc in docs])
    assert len(stored) == 48
    # Sixteen writers, far fewer requests: the first goes alone, the rest wait for it.
    assert _bulk_requests(proxy, db) <= 3


async def test_two_writers_of_one_id_get_one_creation_and_one_conflict(
    couch: CouchClient,
) -> None:
    db = await _scratch_db(couch)
    batches = BulkBatches(couch, db)
    first, second = await asyncio.gather(
        batches.write([{"_id": "same", "by": 1}]), batches.write([{"_id": "same", "by": 2}])
    )
    assert "rev" in first[0]
    assert second[0].get("error") == "conflict"
    assert (await couch.get_doc(db, "same"))["by"] == 1


async def test_a_failed_request_fails_each_writer_in_it_and_the_next_ones_go_through(
    couch: CouchClient, proxy: FaultProxy
) -> None:
    db = await _scratch_db(couch)
    async with CouchClient(proxy.url, timeout=30) as through_proxy:
        batches = BulkBatches(through_proxy, db)
        bulk = f"{db}/_bulk_docs"
        proxy.inject("respond", method="POST", path_contains=bulk, status=500, times=1)
        try:
            failed = await asyncio.gather(
                *(batches.write([{"_id": f"lost{n}"}]) for n in range(4)), return_exceptions=True
            )
        finally:
            proxy.clear()
        assert all(isinstance(outcome, CouchError) for outcome in failed)
        rows = await batches.write([{"_id": "after"}])
    assert "rev" in rows[0]
    with pytest.raises(CouchError):
        await couch.get_doc(db, "lost0")


async def test_a_write_bigger_than_a_request_goes_in_parts_answered_in_order(
    couch: CouchClient, proxy: FaultProxy
) -> None:
    db = await _scratch_db(couch)
    docs = [{"_id": f"big{n:05d}"} for n in range(2 * MAX_DOCS + 10)]
    async with CouchClient(proxy.url, timeout=30) as through_proxy:
        batches = BulkBatches(through_proxy, db)
        big, small = await asyncio.gather(batches.write(docs), batches.write([{"_id": "small"}]))
    assert [row["id"] for row in big] == [doc["_id"] for doc in docs]
    assert all("rev" in row for row in big) and "rev" in small[0]
    # Three parts, the small write with one of them or (none having room) on its own.
    assert _bulk_requests(proxy, db) in (3, 4)
