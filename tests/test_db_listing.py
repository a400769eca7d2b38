"""Database names in a range, listed afresh (service/couchdb/db_listing.py).

A write's ownership check must see a number database created an instant before it began,
so every listing is exact; on Apache CouchDB the info of `_dbs` mostly answers one, for
about half of what `_all_dbs` costs it.
"""

from __future__ import annotations

import time

import pytest
from conftest import APACHE_COUCH_URL, requires_apache_couch
from faultproxy import FaultProxy

from service.couchdb.client import CouchClient
from service.couchdb.db_listing import DatabaseListing
from service.kazoo.ids import new_id


def _range() -> tuple[str, str]:
    prefix = f"listing_{new_id()[:12]}/"
    return prefix, prefix + "\ufff0"


async def test_a_database_is_listed_from_the_moment_it_exists_until_it_is_deleted(
    couch: CouchClient,
):
    start, end = _range()
    listing = DatabaseListing(couch)
    assert await listing.names(start, end) == frozenset()
    try:
        await couch.create_db(start + "a")
        assert await listing.names(start, end) == {start + "a"}
        assert await listing.names(start, end) == {start + "a"}
        await couch.create_db(start + "b")
        assert await listing.names(start, end) == {start + "a", start + "b"}
        await couch.delete_db(start + "a")
        assert await listing.names(start, end) == {start + "b"}
    finally:
        for name in ("a", "b"):
            if start + name in await couch.all_dbs(startkey=start, endkey=end):
                await couch.delete_db(start + name)


def _sent_since(proxy: FaultProxy, mark: int) -> list[str]:
    return [path.split("?")[0] for _method, path in proxy.seen[mark:]]


@requires_apache_couch
async def test_while_no_database_moved_the_info_of_dbs_alone_answers(
    proxy: FaultProxy, couch: CouchClient
):
    start, end = _range()
    async with CouchClient(proxy.url) as client:
        listing = DatabaseListing(client)
        await listing.names(start, end)
        mark = len(proxy.seen)
        assert await listing.names(start, end) == frozenset()
        sent = _sent_since(proxy, mark)
        assert len(sent) == 1 and sent[0].endswith("/_dbs"), sent

        # Any database created moves `_dbs`: the range is read again, and holds the new one.
        other = start + "x"
        await couch.create_db(other)
        try:
            mark = len(proxy.seen)
            assert await listing.names(start, end) == {other}
            sent = _sent_since(proxy, mark)
            assert [path.rsplit("/", 1)[-1] for path in sent] == ["_dbs", "_all_docs"], sent
            assert not any("_all_dbs" in path for path in sent)
        finally:
            await couch.delete_db(other)
        assert await listing.names(start, end) == frozenset()


@pytest.mark.skipif(bool(APACHE_COUCH_URL), reason="the embedded server serves no `_node`")
async def test_where_node_is_not_served_each_listing_is_one_all_dbs_read(proxy: FaultProxy):
    start, end = _range()
    async with CouchClient(proxy.url) as client:
        listing = DatabaseListing(client)
        await listing.names(start, end)
        mark = len(proxy.seen)
        await listing.names(start, end)
        await listing.names(start, end)
        assert _sent_since(proxy, mark) == ["/_all_dbs", "/_all_dbs"]


@requires_apache_couch
async def test_a_node_that_fails_or_does_not_answer_turns_the_listing_to_all_dbs(
    proxy: FaultProxy, couch: CouchClient
):
    """On a cluster the named node may die or be cut off while the others answer: the
    listing is then an `_all_dbs` read, as exact, and the node's name is asked again."""
    start, end = _range()
    other = start + "x"
    async with CouchClient(proxy.url) as client:
        listing = DatabaseListing(client)
        await listing.names(start, end)
        await couch.create_db(other)
        try:
            proxy.inject("respond", path_contains="/_node/", status=500)
            mark = len(proxy.seen)
            assert await listing.names(start, end) == {other}
            assert _sent_since(proxy, mark)[-1] == "/_all_dbs"

            proxy.inject("delay_request", path_contains="/_dbs", delay=10.0)
            began = time.monotonic()
            assert await listing.names(start, end) == {other}
            assert time.monotonic() - began < 6.0
            mark = len(proxy.seen)
            await listing.names(start, end)
            assert _sent_since(proxy, mark)[0] == "/_node/_local"
        finally:
            proxy.clear()
            await couch.delete_db(other)
