"""A listing request's paging, read from the request as crossbar_view reads it (§9), and
the paging keys of the answer's envelope.

The stores take the plain `PageRequest` built here (`stores/listing.py`).
"""

from __future__ import annotations

from service.http.context import RequestContext, is_false
from service.kazoo import errors
from service.kazoo.filters import build_filter
from service.kazoo.start_keys import decode_start_key, encode_start_key
from service.stores.listing import LARGEST_PAGE_SIZE, Json, Page, PageRequest


def page_request(
    ctx: RequestContext, default_page_size: int, *, query_filters: bool = False
) -> PageRequest:
    """Paging from the request; `query_filters` honours crossbar_filter's query keys (§9)."""
    raw_start = ctx.req_value("start_key")
    start_key = decode_start_key(raw_start) if isinstance(raw_start, str) else raw_start
    return PageRequest(
        descending=_descending(ctx),
        page_size=_page_size(ctx, default_page_size),
        start_key=start_key,
        start_key_given=raw_start is not None,
        given_start_key=start_key,
        end_key=ctx.req_value("end_key"),
        doc_filter=build_filter(ctx.request.query_string) if query_filters else None,
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
    return min(size, LARGEST_PAGE_SIZE)


def paging_envelope(request: PageRequest, page: Page) -> Json:
    """The envelope keys a listing adds (§3.1, §9); none of them with paginate=false."""
    if request.page_size is None:
        return {}
    extra: Json = {"page_size": len(page.rows)}
    if request.start_key_given:
        # KAZOO echoes the key it decoded, encoded again (api_util:encode_start_keys/2):
        # a raw doc id comes back in the opaque form a `next_start_key` has (§9).
        extra["start_key"] = encode_start_key(request.given_start_key)
    if page.has_next:
        extra["next_start_key"] = encode_start_key(page.next_key)
    return extra
