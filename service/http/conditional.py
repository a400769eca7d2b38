"""ETag preconditions (§13): the entity tag is the quoted CouchDB `_rev`."""

from __future__ import annotations

from service.http.context import RequestContext
from service.kazoo import errors


def etag(rev: str) -> str:
    return f'"{rev}"'


def _tags(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def _matches(header: str, rev: str | None) -> bool:
    for tag in _tags(header):
        if tag == "*" and rev is not None:
            return True
        # Weak tags never match (cowboy_rest compares strongly).
        if not tag.startswith("W/") and rev is not None and tag == etag(rev):
            return True
    return False


def check_write(ctx: RequestContext, current_rev: str | None) -> None:
    """412 when If-Match / If-None-Match forbid a write to the doc at `current_rev`.

    `current_rev` is None for a create: any If-Match then fails.
    """
    if_match = ctx.request.headers.get("If-Match")
    if if_match is not None and not _matches(if_match, current_rev):
        raise errors.precondition_failed()
    if_none_match = ctx.request.headers.get("If-None-Match")
    if if_none_match is not None and _matches(if_none_match, current_rev):
        raise errors.precondition_failed()


def check_read(ctx: RequestContext, current_rev: str) -> bool:
    """True when a GET should be answered 304 Not Modified; 412 on a failed If-Match."""
    if_match = ctx.request.headers.get("If-Match")
    if if_match is not None and not _matches(if_match, current_rev):
        raise errors.precondition_failed()
    if_none_match = ctx.request.headers.get("If-None-Match")
    return if_none_match is not None and _matches(if_none_match, current_rev)
