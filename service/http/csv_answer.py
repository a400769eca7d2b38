"""Listings answered as CSV when the client asks for it, as Crossbar's to_csv does (§9, §13).

A listing resource answers with `listing_answer(ctx, data, paging)`: the JSON envelope
by default, or CSV when the request's `Accept` prefers CSV (`text/csv`,
`text/comma-separated-values`, `application/octet-stream`, `text/*`) or `accept=csv`
(or one of those types) is in the query string, envelope or `data`.

* `data` a list of objects: one row each (service/kazoo/csv_format.py);
* `data` a list of ids: one row each under an `ID` header. KAZOO runs the ids together
  with no separator (§14 #7), which no client can read back;
* nothing to list: 204 with no body, as Crossbar's `stop` leaves it.

The CSV is the page the JSON answer would hold (paging keys cannot travel in CSV), as
in KAZOO; `paginate=false` gives every row.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from service.http.context import RequestContext
from service.http.envelope import render, success_body
from service.http.negotiation import CSV_TYPES
from service.kazoo.csv_format import objects_to_csv

Json = dict[str, Any]

# What survives of a client's file name in `Content-Disposition: filename="…"`.
_UNSAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9._ ()+,=@-]")
MAX_FILE_NAME = 200


def wants_csv(ctx: RequestContext) -> bool:
    # api_resource:accept_override/1: `accept` read like any request value wins over
    # the header; "csv" or one of the CSV media types picks CSV.
    override = ctx.req_value("accept")
    if isinstance(override, str) and override:
        return override.lower() == "csv" or override.lower() in CSV_TYPES
    return ctx.accepts == "csv"


def listing_answer(
    ctx: RequestContext, data: Any, paging: Json, *, csv_rows: list[Json] | None = None
) -> web.Response:
    """A listing's answer: JSON envelope with `paging`, or CSV of `csv_rows` (else `data`)."""
    if wants_csv(ctx):
        return csv_answer(ctx, csv_rows if csv_rows is not None else _rows(data))
    body = success_body(ctx, data)
    body.update(paging)
    return render(ctx, body, 200)


def csv_answer(ctx: RequestContext, rows: list[Json]) -> web.Response:
    text = objects_to_csv(rows)
    if not text:
        return web.Response(status=204)
    disposition = f'attachment; filename="{file_name(ctx)}"'
    return web.Response(
        status=200,
        body=text,
        headers={"Content-Type": "text/csv", "Content-Disposition": disposition},
    )


def file_name(ctx: RequestContext) -> str:
    """`X-File-Name`, else `file_name`, else KAZOO's temporary name (api_util:csv_file_name/2).

    Only the base name is kept, as KAZOO does, and only characters that cannot break
    out of the quoted header value.
    """
    given = ctx.request.headers.get("X-File-Name") or ctx.req_value("file_name")
    if isinstance(given, str):
        base = re.split(r"[/\\]", given)[-1]
        safe = _UNSAFE_FILE_NAME.sub("_", base)[:MAX_FILE_NAME].strip()
        if safe.strip("._"):
            return safe
    return f"json_{secrets.token_hex(11)}.csv"


def _rows(data: Any) -> list[Json]:
    if isinstance(data, list):
        return [item if isinstance(item, dict) else {"id": item} for item in data]
    return [data] if isinstance(data, dict) else []
