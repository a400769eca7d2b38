"""Listing through a view with KAZOO's paging and ordering (crossbar_view, §9)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from service import fast_json
from service.couchdb.client import CouchClient, DocumentNotFound, EmptyKeyRange
from service.kazoo.filters import DocFilter

Json = dict[str, Any]

# Whether a listing keeps a stored doc (None when the row has no doc).
DocTest = Callable[[Json | None], bool]

# paginate=false reads the view in slices. KAZOO uses 51 rows (crossbar_view); the rows,
# and so the answer, are the same for any slice size, and 1,000 takes 20 times fewer
# round trips for a large account while bounding what one CouchDB answer holds.
UNPAGINATED_CHUNK = 1001
# With filters, a page is filled from view slices of this many rows at least and at most
# (a slice never needs to be as large as a huge `page_size`).
FILTERED_SLICE = 50
FILTERED_SLICE_MAX = 1000
# Apache CouchDB refuses a view `limit` above `[query_server_config] query_limit`
# (default 268435456) with 400 query_parse_error. KAZOO sets no maximum page size (§9),
# so a larger one reads as "all rows", which no account comes near.
LARGEST_PAGE_SIZE = 268_435_456 - 1


@dataclass(frozen=True)
class PageRequest:
    descending: bool
    # None: paginate=false, every row.
    page_size: int | None
    start_key: Any = None
    # Whether the client sent a start key; `given_start_key` is the key it stands for
    # (decoded), kept when a store narrows `start_key` to its own key range.
    start_key_given: bool = False
    given_start_key: Any = None
    end_key: Any = None
    # The query-string filters (crossbar_filter, §9), or any other test of the stored
    # doc; None when there are none.
    doc_filter: DocFilter | DocTest | None = None
    # True when the caller shows only row ids: row values are dropped as soon as read.
    ids_only: bool = False


@dataclass(frozen=True)
class Page:
    rows: list[Json]
    next_key: Any = None
    has_next: bool = False


ViewInstaller = Callable[[], Any]


async def read_page(
    client: CouchClient,
    db: str,
    ddoc: str,
    view: str,
    request: PageRequest,
    *,
    install_views: Callable[[], Any],
) -> Page:
    """One page (or everything with paginate=false) of view rows, ids only."""
    try:
        try:
            return await _read(client, db, ddoc, view, request)
        except DocumentNotFound:
            # KAZOO installs a missing design doc and retries (kz_datamgr:get_results/3).
            await install_views()
            return await _read(client, db, ddoc, view, request)
    except EmptyKeyRange:
        # `start_key` past `end_key` in the listing's direction: no id can match, so the
        # page is empty (CouchDB's 400 for it is no fault of the datastore).
        return Page(rows=[])


async def _read(client: CouchClient, db: str, ddoc: str, view: str, request: PageRequest) -> Page:
    if request.doc_filter is not None:
        return await _read_filtered(client, db, ddoc, view, request, request.doc_filter)
    if request.page_size is None:
        return await _read_all(client, db, ddoc, view, request)
    rows = await _query(
        client, db, ddoc, view, request, request.start_key, None, request.page_size + 1
    )
    if len(rows) > request.page_size:
        extra = rows[request.page_size]
        return Page(rows=rows[: request.page_size], next_key=extra["key"], has_next=True)
    return Page(rows=rows)


async def _read_all(
    client: CouchClient, db: str, ddoc: str, view: str, request: PageRequest
) -> Page:
    collected: list[Json] = []
    start_key, start_doc = request.start_key, None
    while True:
        rows = await _query(
            client, db, ddoc, view, request, start_key, start_doc, UNPAGINATED_CHUNK
        )
        if len(rows) < UNPAGINATED_CHUNK:
            collected.extend(rows)
            return Page(rows=collected)
        collected.extend(rows[:-1])
        # The last row starts the next slice; startkey_docid keeps equal keys apart.
        start_key, start_doc = rows[-1]["key"], rows[-1]["id"]


async def _read_filtered(
    client: CouchClient,
    db: str,
    ddoc: str,
    view: str,
    request: PageRequest,
    keep: DocFilter | DocTest,
) -> Page:
    """A page counted after filtering: view slices are read until it is full or the view ends.

    crossbar_view asks for the rows still missing plus one and repeats from the extra
    row, so its `next_start_key` is the key of the row right after the last one
    returned; larger slices give the same page with fewer round trips.
    """
    kept: list[Json] = []
    start_key, start_doc = request.start_key, None
    while True:
        wanted = None if request.page_size is None else request.page_size - len(kept)
        slice_size = (
            UNPAGINATED_CHUNK - 1
            if wanted is None
            else min(max(wanted, FILTERED_SLICE), FILTERED_SLICE_MAX)
        )
        rows = await _query(
            client, db, ddoc, view, request, start_key, start_doc, slice_size + 1, include_docs=True
        )
        for position, row in enumerate(rows[:slice_size]):
            if not keep(row.get("doc")):
                continue
            kept.append(row)
            if len(kept) == request.page_size:
                following = rows[position + 1 : position + 2]
                if following:
                    return Page(rows=kept, next_key=following[0]["key"], has_next=True)
                return Page(rows=kept)
        if len(rows) <= slice_size:
            return Page(rows=kept)
        # The extra row starts the next slice; startkey_docid keeps equal keys apart.
        start_key, start_doc = rows[-1]["key"], rows[-1]["id"]


async def _query(
    client: CouchClient,
    db: str,
    ddoc: str,
    view: str,
    request: PageRequest,
    start_key: Any,
    start_doc: str | None,
    limit: int,
    *,
    include_docs: bool = False,
) -> list[Json]:
    result = await client.view(
        db,
        ddoc,
        view,
        reduce=False,
        descending=request.descending,
        startkey=start_key,
        startkey_docid=start_doc,
        endkey=request.end_key,
        limit=limit,
        # Filters look at the full stored doc, private fields included (§9).
        include_docs=True if include_docs else None,
    )
    rows = result.get("rows", [])
    if include_docs or not request.ids_only:
        return list(rows)
    # Only ids and keys are ever used: dropping the values (KAZOO's crossbar_listing
    # emits whole `servers` arrays) at once keeps memory to the ids of the listing.
    return [{"id": row["id"], "key": row["key"]} for row in rows]


def page_key(view: str, request: PageRequest, query_string: str) -> str:
    """Names what `read_page` answers for `request`: equal keys, equal pages (cache/reads.py)."""
    return fast_json.dumps(
        [
            view,
            request.descending,
            request.page_size,
            request.start_key,
            request.start_key_given,
            request.end_key,
            request.ids_only,
            # The filters are built from the query string alone (kazoo/filters.py).
            query_string if request.doc_filter is not None else None,
        ]
    ).decode()


def ids_of(page: Page) -> Page:
    """The page with each row reduced to its id."""
    return replace(page, rows=[{"id": row["id"]} for row in page.rows])


def ids_page_size(page: Page) -> int:
    """Roughly what an ids-only page holds in memory, in bytes."""
    # A one-key dict (~230 bytes) and its id string (~50 bytes plus the characters).
    return 200 + sum(300 + len(str(row.get("id", ""))) for row in page.rows)
