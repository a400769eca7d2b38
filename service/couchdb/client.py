"""The only module that speaks HTTP to CouchDB.

Each call says which CouchDB status means what, and raises a typed exception for the
rest; no other module sees aiohttp's client errors. We use aiohttp directly rather than
aiocouch: aiocouch 4.0.1 builds `_all_docs` URLs without quoting `account/…` names,
raises TypeError on views with a reduce, and surfaces raw aiohttp errors
(docs/embedded-couchdb.md), and every request here is on the hot path.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp
import yarl
from aiohttp.client_middlewares import ClientHandlerType
from aiohttp.http_exceptions import HttpProcessingError

from service import fast_json

log = logging.getLogger(__name__)

Json = dict[str, Any]


class CouchError(Exception):
    """CouchDB answered something this layer does not expect."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CouchUnreachable(CouchError):
    """CouchDB could not be reached, timed out, or answered 5xx: retry later.

    The subclasses say which, so that the client is told what happened.
    """


class CouchTimeout(CouchUnreachable):
    """CouchDB did not answer within the configured timeout."""


class CouchRefused(CouchUnreachable):
    """Nothing accepted the connection to CouchDB."""


class CouchFault(CouchUnreachable):
    """CouchDB answered, with a 5xx: a fault on its side, not a lost connection."""


class DocumentNotFound(CouchError):
    pass


class DatabaseNotFound(CouchError):
    pass


class DocumentConflict(CouchError):
    pass


class DatabaseExists(CouchError):
    pass


class DocumentTooLarge(CouchError):
    """CouchDB's max_document_size (8 MB by default in CouchDB 3) refused the doc."""


class EmptyKeyRange(CouchError):
    """A view query whose start key sorts after its end key: no row can match.

    CouchDB refuses such a query (400 `query_parse_error`) instead of answering none.
    """


@dataclass(frozen=True)
class SavedDoc:
    id: str
    rev: str
    # 202: accepted by fewer nodes than the write quorum. A success for the client,
    # worth a warning for the operator.
    accepted_below_quorum: bool


def split_credentials(url: str) -> tuple[str, str | None]:
    """Returns the URL without user:password, and an `Authorization` header value."""
    parts = urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), None
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return bare.rstrip("/"), "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def quote_db(name: str) -> str:
    # Database names like `account/ab/cd/…` must travel as one path segment.
    return quote(name, safe="")


def quote_doc_id(doc_id: str) -> str:
    # CouchDB addresses design docs as `_design/name` with a literal slash.
    if doc_id.startswith("_design/"):
        return "_design/" + quote(doc_id[len("_design/") :], safe="")
    return quote(doc_id, safe="")


def encode_view_params(params: Mapping[str, Any]) -> dict[str, str]:
    """CouchDB wants JSON values for keys and booleans as `true`/`false`."""
    encoded: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in ("key", "startkey", "endkey", "start_key", "end_key", "keys"):
            encoded[name] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            encoded[name] = "true" if value else "false"
        else:
            encoded[name] = str(value)
    return encoded


class CouchClient:
    """A keep-alive session to one CouchDB (or the embedded server)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        connections: int = 100,
        view_timeout: float | None = None,
    ) -> None:
        self.base_url, self._auth = split_credentials(url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # A view read first brings the index up to date with the writes before it, in
        # CouchDB's own processes: for a trunk of 50,000 DIDs that alone takes up to a minute
        # on Apache CouchDB 3.4 (README, Big trunks). Still a failure past this, but not
        # past `timeout`; a connection is given up after `timeout` all the same.
        self._view_timeout = aiohttp.ClientTimeout(
            total=max(timeout, view_timeout or timeout), sock_connect=timeout
        )
        # aiohttp's own default; a client that holds changes feeds open needs one per feed.
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            headers = {"Accept": "application/json"}
            if self._auth is not None:
                headers["Authorization"] = self._auth
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers=headers,
                connector=aiohttp.TCPConnector(limit=self._connections),
                # CouchDB errors are answered by status, never by exception.
                raise_for_status=False,
                # Compressed continuous feeds stall on the embedded server
                # (docs/embedded-couchdb.md).
                auto_decompress=True,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> CouchClient:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- raw request -------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[int, Any]:
        """Sends one request; returns (status, decoded JSON body).

        Connection failures become `CouchUnreachable`, timeouts `CouchTimeout` and 5xx
        answers `CouchFault` (both kinds of `CouchUnreachable`).
        """
        status, raw = await self._exchange(method, path, params=params, body=body, timeout=timeout)
        return status, _decode(raw)

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> tuple[int, bytes]:
        """`request` without decoding the answer: (status, body bytes)."""
        if self._session is None:
            await self.open()
        assert self._session is not None
        url = yarl.URL(f"{self.base_url}/{path}", encoded=True)
        if params:
            url = url.with_query(params)
        data = None
        headers = None
        if body is not None:
            # Bytes are JSON encoded by the caller already.
            data = body if isinstance(body, bytes) else fast_json.dumps(body)
            headers = {"Content-Type": "application/json"}
        attempts = _AttemptCounter()
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                middlewares=(attempts,),
                timeout=timeout or self._timeout,
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning(
                "couchdb unreachable",
                extra={"couch_method": method, "couch_path": path, "fault": type(exc).__name__},
            )
            raise _unreachable_kind(exc)(f"{method} {path}: {type(exc).__name__}") from exc
        if status >= 500:
            log.warning(
                "couchdb fault",
                extra={"couch_method": method, "couch_path": path, "couch_status": status},
            )
            raise CouchFault(f"{method} {path}: HTTP {status}", status=status)
        if status == 409 and attempts.tries > 1:
            # aiohttp resent this PUT/DELETE once after the connection dropped; the
            # conflict may be with our own first attempt, which CouchDB then committed.
            # The outcome is unknown, so say so (503) rather than "conflict" (409).
            log.warning(
                "couchdb write outcome unknown",
                extra={"couch_method": method, "couch_path": path, "fault": "resent after cut"},
            )
            raise CouchUnreachable(f"{method} {path}: outcome unknown after a resend")
        return status, raw

    # -- server ------------------------------------------------------------------------

    async def is_up(self) -> bool:
        try:
            status, _ = await self.request("GET", "_up")
        except CouchUnreachable:
            return False
        return status == 200

    async def all_dbs(self, *, startkey: str | None = None, endkey: str | None = None) -> list[str]:
        params = encode_view_params({"startkey": startkey, "endkey": endkey})
        status, body = await self.request("GET", "_all_dbs", params=params or None)
        _expect(status, body, (200,), "GET /_all_dbs")
        return list(body)

    # -- databases ---------------------------------------------------------------------

    async def create_db(self, db: str) -> None:
        status, body = await self.request("PUT", quote_db(db))
        if status == 412:
            raise DatabaseExists(db, status=status)
        _expect(status, body, (201, 202), f"PUT /{db}")

    async def ensure_db(self, db: str) -> bool:
        """Creates the database if needed; returns True when it was created now."""
        try:
            await self.create_db(db)
        except DatabaseExists:
            return False
        return True

    async def delete_db(self, db: str) -> None:
        status, body = await self.request("DELETE", quote_db(db))
        if status == 404:
            raise DatabaseNotFound(db, status=status)
        _expect(status, body, (200, 202), f"DELETE /{db}")

    async def put_security(self, db: str, security: Json) -> None:
        status, body = await self.request("PUT", f"{quote_db(db)}/_security", body=security)
        _raise_not_found(status, body, db, None)
        _expect(status, body, (200,), f"PUT /{db}/_security")

    # -- documents ---------------------------------------------------------------------

    async def get_doc(self, db: str, doc_id: str, **params: str) -> Json:
        status, body = await self.request(
            "GET", f"{quote_db(db)}/{quote_doc_id(doc_id)}", params=params or None
        )
        _raise_not_found(status, body, db, doc_id)
        _expect(status, body, (200,), f"GET /{db}/{doc_id}")
        return dict(body)

    async def get_doc_bytes(self, db: str, doc_id: str) -> bytes:
        """The doc's JSON exactly as CouchDB sent it (for callers that keep it as is)."""
        path = f"{quote_db(db)}/{quote_doc_id(doc_id)}"
        status, raw = await self._exchange("GET", path)
        if status != 200:
            body = _decode(raw)
            _raise_not_found(status, body, db, doc_id)
            _expect(status, body, (200,), f"GET /{db}/{doc_id}")
        return raw

    async def put_doc(self, db: str, doc: Json, *, encoded: bytes | None = None) -> SavedDoc:
        """Saves `doc` at its `_id` (and `_rev`, if any). `encoded`: `doc` as JSON
        already, so that a big doc is not encoded twice."""
        doc_id = doc["_id"]
        path = f"{quote_db(db)}/{quote_doc_id(doc_id)}"
        status, body = await self.request("PUT", path, body=doc if encoded is None else encoded)
        if status == 409:
            return await self._conflicted(db, doc)
        if status == 413:
            raise DocumentTooLarge(doc_id, status=status)
        _raise_not_found(status, body, db, doc_id)
        _expect(status, body, (201, 202), f"PUT /{db}/{doc_id}")
        _note_below_quorum(status, db)
        return SavedDoc(id=body["id"], rev=body["rev"], accepted_below_quorum=status == 202)

    async def saved_from_row(self, db: str, doc: Json, row: Json) -> SavedDoc:
        """What `put_doc(db, doc)` answers, read from `doc`'s row of a `_bulk_docs`
        answer (couchdb/grouped_saves.py). A row below quorum cannot be told from the
        others (the whole answer is a 202: `bulk_docs` logs it)."""
        error = row.get("error")
        rev = row.get("rev")
        if error is None and isinstance(rev, str):
            return SavedDoc(id=doc["_id"], rev=rev, accepted_below_quorum=False)
        if error == "conflict":
            return await self._conflicted(db, doc)
        if error in ("too_large", "document_too_large"):
            raise DocumentTooLarge(doc["_id"], status=413)
        raise CouchError(f"POST /{db}/_bulk_docs: {doc['_id']}: {error} {row.get('reason')!r:.200}")

    async def _conflicted(self, db: str, doc: Json) -> SavedDoc:
        landed = await self._own_landed_write(db, doc)
        if landed is not None:
            return landed
        raise DocumentConflict(doc["_id"], status=409)

    async def _own_landed_write(self, db: str, doc: Json) -> SavedDoc | None:
        """The stored revision, when what conflicted with the update `doc` is `doc`
        itself: the next revision after the one it was based on, with exactly its
        content. A balancer that resends a request whose answer was lost (a node killed
        mid-request) makes CouchDB apply it once and refuse the copy; that write was
        saved, not refused."""
        base = doc.get("_rev")
        if not isinstance(base, str):
            # A create that meets an existing id is KAZOO's 409 whatever the content: a
            # client resending its PUT learns that way that the first one landed.
            return None
        expected = int(base.split("-", 1)[0]) + 1
        try:
            stored = await self.get_doc(db, doc["_id"])
        except (DocumentNotFound, DatabaseNotFound):
            return None
        rev = stored.pop("_rev", "")
        sent = {key: value for key, value in doc.items() if key != "_rev"}
        if not rev.startswith(f"{expected}-") or stored != sent:
            return None
        log.warning("couchdb write landed before its conflict", extra={"couch_db": db})
        return SavedDoc(id=doc["_id"], rev=rev, accepted_below_quorum=False)

    async def delete_doc(self, db: str, doc_id: str, rev: str) -> SavedDoc:
        status, body = await self.request(
            "DELETE", f"{quote_db(db)}/{quote_doc_id(doc_id)}", params={"rev": rev}
        )
        if status == 409:
            raise DocumentConflict(doc_id, status=status)
        _raise_not_found(status, body, db, doc_id)
        _expect(status, body, (200, 202), f"DELETE /{db}/{doc_id}")
        return SavedDoc(id=body["id"], rev=body["rev"], accepted_below_quorum=status == 202)

    async def get_docs(self, db: str, doc_ids: list[str]) -> dict[str, Json]:
        """The existing docs among `doc_ids`, by id, in one `_all_docs` round trip.

        Missing and deleted ids are simply absent from the answer.
        """
        rows = await self._keyed_rows(db, doc_ids, include_docs=True)
        return {row["id"]: row["doc"] for row in rows if isinstance(row.get("doc"), dict)}

    async def current_docs(self, db: str, doc_ids: list[str]) -> dict[str, tuple[str, Json | None]]:
        """(current revision, doc or None when deleted) of each of `doc_ids` that exists
        or existed, by id, in one `_all_docs` round trip."""
        found: dict[str, tuple[str, Json | None]] = {}
        for row in await self._keyed_rows(db, doc_ids, include_docs=True):
            value = row.get("value")
            if isinstance(value, dict) and isinstance(value.get("rev"), str):
                doc = row.get("doc")
                found[row["id"]] = (value["rev"], doc if isinstance(doc, dict) else None)
        return found

    async def revisions(self, db: str, doc_ids: list[str]) -> dict[str, str]:
        """The current revision of each of `doc_ids` that exists or existed (a deleted
        doc's tombstone included), by id, in one `_all_docs` round trip."""
        return {
            row["id"]: row["value"]["rev"]
            for row in await self._keyed_rows(db, doc_ids, include_docs=False)
            if isinstance(row.get("value"), dict) and "rev" in row["value"]
        }

    async def _keyed_rows(self, db: str, doc_ids: list[str], *, include_docs: bool) -> list[Json]:
        status, body = await self.request(
            "POST",
            f"{quote_db(db)}/_all_docs",
            params={"include_docs": "true"} if include_docs else None,
            body={"keys": doc_ids},
        )
        _raise_not_found(status, body, db, None)
        _expect(status, body, (200,), f"POST /{db}/_all_docs")
        rows = body.get("rows", []) if isinstance(body, dict) else []
        return [row for row in rows if isinstance(row, dict)]

    async def all_docs(self, db: str, **params: Any) -> Json:
        """`GET /{db}/_all_docs` with view-style parameters (JSON-encoded keys)."""
        status, body = await self.request(
            "GET", f"{quote_db(db)}/_all_docs", params=encode_view_params(params)
        )
        _raise_not_found(status, body, db, None)
        _expect(status, body, (200,), f"GET /{db}/_all_docs")
        return dict(body)

    async def welcome(self) -> Json:
        """`GET /`: the server's version and vendor."""
        status, body = await self.request("GET", "")
        _expect(status, body, (200,), "GET /")
        return dict(body)

    async def db_info(self, db: str) -> Json:
        status, body = await self.request("GET", quote_db(db))
        _raise_not_found(status, body, db, None)
        _expect(status, body, (200,), f"GET /{db}")
        return dict(body)

    async def changes(
        self, db: str, *, since: Any = "0", limit: int | None = None, include_docs: bool = False
    ) -> Json:
        """One `GET /{db}/_changes` (normal feed): `results` and `last_seq`."""
        params = {"since": since if isinstance(since, str) else json.dumps(since)}
        if limit is not None:
            params["limit"] = str(limit)
        if include_docs:
            params["include_docs"] = "true"
        status, body = await self.request("GET", f"{quote_db(db)}/_changes", params=params)
        _raise_not_found(status, body, db, None)
        _expect(status, body, (200,), f"GET /{db}/_changes")
        return dict(body)

    async def bulk_docs(
        self, db: str, docs: list[Json], *, encoded: list[bytes] | None = None
    ) -> list[Json]:
        """`POST /{db}/_bulk_docs`: one result per doc, `{"id", "rev"}` or `{"id", "error"}`
        (a `conflict` when the doc exists and no matching `_rev` was given). `encoded`:
        the same docs as JSON already."""
        body: Any = {"docs": docs}
        if encoded is not None:
            body = b'{"docs":[' + b",".join(encoded) + b"]}"
        status, body = await self.request("POST", f"{quote_db(db)}/_bulk_docs", body=body)
        _raise_not_found(status, body, db, None)
        _expect(status, body, (201, 202), f"POST /{db}/_bulk_docs")
        _note_below_quorum(status, db)
        return [row for row in body if isinstance(row, dict)] if isinstance(body, list) else []

    # -- views -------------------------------------------------------------------------

    async def view(self, db: str, ddoc: str, view: str, **params: Any) -> Json:
        path = f"{quote_db(db)}/_design/{quote(ddoc, safe='')}/_view/{quote(view, safe='')}"
        status, body = await self.request(
            "GET", path, params=encode_view_params(params), timeout=self._view_timeout
        )
        if status == 404:
            reason = _reason(body)
            if "Database does not exist" in reason or reason == "no_db_file":
                raise DatabaseNotFound(db, status=status)
            raise DocumentNotFound(f"_design/{ddoc}/{view}", status=status)
        if status == 400 and "No rows can match your key range" in _reason(body):
            raise EmptyKeyRange(f"GET {path}", status=status)
        _expect(status, body, (200,), f"GET {path}")
        return dict(body)

    # -- changes -----------------------------------------------------------------------

    async def follow_changes(
        self,
        db: str,
        *,
        since: str = "now",
        heartbeat: float = 5.0,
        opened: Callable[[], None] | None = None,
        include_docs: bool = False,
    ) -> AsyncIterator[Json]:
        """The rows of a continuous `_changes` feed, as they come, until CouchDB ends it.

        `opened` is called once CouchDB has answered 200: every change made after that
        moment is delivered. A feed silent for three heartbeats counts as lost
        (`CouchUnreachable`), as do connection failures.
        """
        if self._session is None:
            await self.open()
        assert self._session is not None
        query = {"feed": "continuous", "since": since, "heartbeat": str(int(heartbeat * 1000))}
        if include_docs:
            query["include_docs"] = "true"
        url = yarl.URL(f"{self.base_url}/{quote_db(db)}/_changes", encoded=True).with_query(query)
        # No total timeout: the feed is meant to stay open. Uncompressed, because a
        # compressed continuous feed stalls on the embedded server (docs/embedded-couchdb.md).
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout.total, sock_read=heartbeat * 3
        )
        try:
            async with self._session.get(
                url, timeout=timeout, headers={"Accept-Encoding": "identity"}
            ) as resp:
                if resp.status != 200:
                    body = _decode(await resp.read())
                    if resp.status >= 500:
                        raise CouchFault(f"GET /{db}/_changes: HTTP {resp.status}")
                    _raise_not_found(resp.status, body, db, None)
                    _expect(resp.status, body, (200,), f"GET /{db}/_changes")
                if opened is not None:
                    opened()
                while line := await resp.content.readline(max_line_length=MAX_FEED_LINE):
                    if not line.strip():
                        continue  # a heartbeat
                    row = _decode(line)
                    if not isinstance(row, dict) or "last_seq" in row:
                        return
                    yield row
        except (TimeoutError, aiohttp.ClientError, OSError, HttpProcessingError) as exc:
            raise CouchUnreachable(f"GET /{db}/_changes: {type(exc).__name__}") from exc


# A feed row with `include_docs` holds a whole doc: CouchDB 3 stores docs of up to 8 MB
# by default (aiohttp's own line limit is 512 kB).
MAX_FEED_LINE = 64 * 1024 * 1024


class _AttemptCounter:
    """Counts how often one request was tried: aiohttp silently resends an idempotent
    request (PUT, DELETE, GET) once when a kept-alive connection drops.

    A client middleware, called once per try. (An aiohttp TraceConfig did the same at
    ~90 µs of CPU per CouchDB request, a tenth of a GET's cost.)
    """

    __slots__ = ("tries",)

    def __init__(self) -> None:
        self.tries = 0

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        self.tries += 1
        return await handler(request)


def _unreachable_kind(exc: BaseException) -> type[CouchUnreachable]:
    if isinstance(exc, TimeoutError):
        return CouchTimeout
    if isinstance(exc, (aiohttp.ClientConnectorError, ConnectionRefusedError)):
        return CouchRefused
    return CouchUnreachable


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return fast_json.loads(raw)
    except ValueError:
        return {"error": "not_json", "reason": raw[:200].decode("utf-8", "replace")}


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("reason", ""))
    return ""


def _raise_not_found(status: int, body: Any, db: str, doc_id: str | None) -> None:
    if status != 404:
        return
    reason = _reason(body)
    # CouchDB says "Database does not exist."; the embedded server says "no_db_file".
    if doc_id is None or "Database does not exist" in reason or reason == "no_db_file":
        raise DatabaseNotFound(db, status=status)
    raise DocumentNotFound(doc_id, status=status)


def _note_below_quorum(status: int, db: str) -> None:
    """A 202: a cluster stored the write on fewer nodes than its write quorum asks."""
    if status == 202:
        log.warning("couchdb accepted a write below quorum", extra={"couch_db": db})


def _expect(status: int, body: Any, ok: tuple[int, ...], what: str) -> None:
    if status not in ok:
        raise CouchError(f"{what}: HTTP {status} {body!r:.200}", status=status)
