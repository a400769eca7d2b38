"""Listing through a view with KAZOO's paging and ordering (crossbar_view, §9)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import errors
from .context import RequestContext, is_false
from .couchdb import CouchClient, DocumentNotFound
from .start_keys import decode_start_key, encode_start_key

Json = dict[str, Any]

# paginate=false still reads the view in slices of this size (crossbar_view).
UNPAGINATED_CHUNK = 51


@dataclass(frozen=True)
class PageRequest:
    descending: bool
    # None: paginate=false, every row.
    page_size: int | None
    start_key: Any = None
    start_key_given: str | None = None
    end_key: Any = None


@dataclass(frozen=True)
class Page:
    rows: list[Json]
    next_key: Any = None
    has_next: bool = False


def page_request(ctx: RequestContext, default_page_size: int) -> PageRequest:
    raw_start = ctx.req_value("start_key")
    start_key = decode_start_key(raw_start) if isinstance(raw_start, str) else raw_start
    return PageRequest(
        descending=_descending(ctx),
        page_size=_page_size(ctx, default_page_size),
        start_key=start_key,
        start_key_given=raw_start if raw_start is not None else None,
        end_key=ctx.req_value("end_key"),
    )


def _descending(ctx: RequestContext) -> bool:
    # crossbar_view:direction/2: descending unless the query string has `ascending`
    # with any value but "false" and `descending` is not "true". So `descending=false`
    # alone still lists descending (§14 #14, reproduced on purpose).
    ascending = ctx.query.get("ascending")
    if ascending is not None and not is_false(ascending):
        return ctx.query.get("descending", "").lower() == "true"
    return True


def _page_size(ctx: RequestContext, default: int) -> int | None:
    if is_false(ctx.req_value("paginate")):
        return None
    raw = ctx.req_value("page_size")
    if raw is None:
        return default
    if isinstance(raw, bool):
        raise errors.faulty_request("invalid page size")
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise errors.faulty_request("invalid page size") from None
    if size < 1:
        raise errors.faulty_request("page size must be at least 1")
    return size


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
        return await _read(client, db, ddoc, view, request)
    except DocumentNotFound:
        # KAZOO installs a missing design doc and retries (kz_datamgr:get_results/3).
        await install_views()
        return await _read(client, db, ddoc, view, request)


async def _read(client: CouchClient, db: str, ddoc: str, view: str, request: PageRequest) -> Page:
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


async def _query(
    client: CouchClient,
    db: str,
    ddoc: str,
    view: str,
    request: PageRequest,
    start_key: Any,
    start_doc: str | None,
    limit: int,
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
    )
    return list(result.get("rows", []))


def paging_envelope(request: PageRequest, page: Page) -> Json:
    """The envelope keys a listing adds (§3.1, §9); none of them with paginate=false."""
    if request.page_size is None:
        return {}
    extra: Json = {"page_size": len(page.rows)}
    if request.start_key_given is not None:
        extra["start_key"] = request.start_key_given
    if page.has_next:
        extra["next_start_key"] = encode_start_key(page.next_key)
    return extra
