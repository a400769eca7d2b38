"""KAZOO's response envelope and headers (docs/kazoo-compatibility.md §3)."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from service import __version__, fast_json
from service.http.context import RequestContext, is_true
from service.kazoo.errors import KazooError

Json = dict[str, Any]

# KAZOO: base64url(md5(erlang node name)) without padding (kz_nodes:node_encoded/0).
NODE = (
    base64.urlsafe_b64encode(hashlib.md5(f"connectivity@{socket.gethostname()}".encode()).digest())
    .decode()
    .rstrip("=")
)

CORS_ALLOW_HEADERS = (
    "content-type, depth, user-agent, x-http-method-override, x-file-size, "
    "x-requested-with, if-modified-since, x-file-name, cache-control, x-auth-token, "
    "x-kazoo-cluster-id, if-match"
)
CORS_EXPOSE_HEADERS = (
    "content-type, x-auth-token, x-request-id, x-kazoo-cluster-id, location, etag, etag"
)
GET_EXPIRES = "Fri, 01 Jan 1999 00:00:00 GMT"
JSON_TYPE = "application/json"


def iso_timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _base(ctx: RequestContext | None, status: str) -> Json:
    body: Json = {
        "node": NODE,
        "request_id": ctx.request_id if ctx else "",
        "status": status,
        "timestamp": iso_timestamp(),
    }
    tokens = ctx.bucket_tokens() if ctx is not None else None
    if tokens is not None:
        body["tokens"] = tokens
    if ctx is not None and ctx.auth_token is not None:
        body["auth_token"] = ctx.auth_token
    if ctx is not None and ctx.is_authenticated:
        body["version"] = __version__
    return body


def success_body(ctx: RequestContext, data: Any, *, revision: str | None = None) -> Json:
    body = _base(ctx, "success")
    body["data"] = data
    if revision is not None:
        body["revision"] = revision
    return body


def error_body(ctx: RequestContext | None, error: KazooError) -> Json:
    body = _base(ctx, "error")
    body["data"] = error.data
    body["error"] = str(error.status)
    body["message"] = error.message
    return body


@dataclass(frozen=True)
class RenderedJson:
    """A `data` value already encoded (fast_json.dumps): written into the envelope as is."""

    raw: bytes


def render(ctx: RequestContext | None, body: Json, status: int) -> web.Response:
    """Serialises the envelope, honouring `pretty_print` and `jsonp` (§3.1)."""
    pretty = ctx is not None and (
        is_true(ctx.req_value("pretty_print"))
        or is_true(ctx.request.headers.get("X-Pretty-Print", ""))
    )
    data = body.get("data")
    if isinstance(data, RenderedJson):
        # Indented output re-encodes it; otherwise orjson copies the bytes in.
        body = {**body, "data": fast_json.loads(data.raw) if pretty else orjson.Fragment(data.raw)}
    if pretty:
        raw = json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8")
    else:
        raw = fast_json.dumps(body)
    jsonp = ctx.query.get("jsonp") if ctx is not None else None
    if jsonp:
        # KAZOO keeps application/json even when wrapping (§3.1).
        raw = f"{jsonp}(".encode() + raw + b");"
    # Exactly `application/json`, as KAZOO sends it: Monster UI reads an error body only
    # when the type is exactly that (with `; charset=utf-8` a failed login shows
    # nothing: its SDK, jquery.kazoosdk.js, checks the type). The body is UTF-8 all
    # the same (RFC 8259 allows no other).
    return web.Response(status=status, body=raw, content_type=JSON_TYPE)


def wants_cors(request: web.Request) -> bool:
    return "Origin" in request.headers or any(
        name.lower().startswith("access-control-request-") for name in request.headers
    )


def cors_headers(request: web.Request, allowed: list[str]) -> dict[str, str]:
    methods = ["OPTIONS", *allowed]
    requested = request.headers.get("Access-Control-Request-Method")
    if requested and requested.upper() not in methods:
        # KAZOO appends a requested method even when it is not allowed (§3.2 quirk).
        methods.append(requested.upper())
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
        "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
        "Access-Control-Max-Age": "86400",
    }
