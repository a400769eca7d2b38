"""What every resource module provides to the request pipeline."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web

from service.http.context import RequestContext


class Resource(Protocol):
    # Paths under /v2/accounts/{ACCOUNT_ID}/ have their account checked (404) before
    # authentication, as Crossbar's malformed_request does (§1 step 4): see http/pipeline.py.
    # False only for the endpoints that hand out tokens.
    needs_auth: bool

    def allowed_methods(self, args: list[str]) -> tuple[str, ...] | None:
        """The verbs for this path below the resource; None when the path is unknown."""
        ...

    async def execute(self, ctx: RequestContext, args: list[str]) -> web.StreamResponse: ...


@runtime_checkable
class ReadsAhead(Protocol):
    """A resource whose work can start reading before the request's account and token
    are checked (for a caller whose token is correctly signed). `read_ahead` says
    whether it began any."""

    def read_ahead(self, ctx: RequestContext, account_id: str, args: list[str]) -> bool: ...


def collection_or_item(
    args: list[str], collection: tuple[str, ...], item: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The verbs of `/resource` (no args) or `/resource/{id}`; None for any deeper path."""
    if not args:
        return collection
    if len(args) == 1:
        return item
    return None
