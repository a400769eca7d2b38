"""The embedded CouchDB-compatible server, started through EmbeddedCouch.

Each test checks one behaviour the service relies on and that unmodified
express-pouchdb got wrong (docs/embedded-couchdb.md), over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.message
import email.parser
import email.policy
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from conftest import APACHE_COUCH_URL, requires_apache_couch
from yarl import URL

from service.couchdb.client import split_credentials
from service.couchdb.embedded import EmbeddedCouch, EmbeddedCouchError, EmbeddedOptions

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER = "admin"
PASSWORD = "s3cret-Pa55"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
Json = dict[str, Any]
ACCOUNT_DB = "account/ab/cd/ef0123456789abcdef0123456789ab"
NUMBERS_DB = "numbers/+1415"


def url(base: str, *parts: str, **query: Any) -> URL:
    """base/part/part?query with each part percent-encoded as CouchDB expects."""
    path = "/".join(quote(part, safe="") for part in parts)
    encoded = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in query.items()
    }
    return URL(f"{base}/{path}", encoded=True).with_query(encoded)


def view_url(base: str, db: str, ddoc: str, view: str) -> URL:
    return URL(f"{base}/{quote(db, safe='')}/_design/{ddoc}/_view/{view}", encoded=True)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def embedded() -> AsyncIterator[EmbeddedCouch]:
    """One in-memory server for the module (not named `couch`: conftest has one)."""
    server = EmbeddedCouch(EmbeddedOptions(admin_user=USER, admin_password=PASSWORD))
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session


@pytest_asyncio.fixture(loop_scope="module")
async def db(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, request: pytest.FixtureRequest
) -> str:
    """A fresh database with a "/" name, per test."""
    name = "account/" + re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())
    async with http.put(url(embedded.url, name)) as resp:
        assert resp.status == 201, await resp.text()
    return name


async def put_doc(
    http: aiohttp.ClientSession, base: str, db: str, doc_id: str, body: dict[str, Any]
) -> str:
    async with http.put(url(base, db, doc_id), json=body) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["rev"])


async def get_json(http: aiohttp.ClientSession, target: URL) -> tuple[int, Any]:
    async with http.get(target) as resp:
        return resp.status, await resp.json()


async def test_responses_are_json_without_accept_header(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    targets = [url(embedded.url), url(embedded.url, "_all_dbs"), url(embedded.url, db, "missing")]
    for target in targets:
        async with http.get(target, skip_auto_headers=("Accept",)) as resp:
            assert resp.content_type == "application/json", target
            await resp.json()
    async with http.put(
        url(embedded.url, db, "doc"), data=b"{}", skip_auto_headers=("Accept", "Content-Type")
    ) as resp:
        assert resp.status == 201
        assert resp.content_type == "application/json"


async def test_slashed_database_names_round_trip(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession
) -> None:
    for name in (ACCOUNT_DB, NUMBERS_DB):
        async with http.put(url(embedded.url, name)) as resp:
            assert resp.status == 201, await resp.text()
    status, names = await get_json(http, url(embedded.url, "_all_dbs"))
    assert status == 200
    assert ACCOUNT_DB in names and NUMBERS_DB in names
    assert not any("/" not in n and n.startswith("account") for n in names)
    status, info = await get_json(http, url(embedded.url, NUMBERS_DB))
    assert (status, info["db_name"]) == (200, NUMBERS_DB)
    status, body = await get_json(http, url(embedded.url, "account/nope"))
    assert (status, body) == (404, {"error": "not_found", "reason": "Database does not exist."})


async def test_all_dbs_ranges_follow_creates_and_deletes(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession
) -> None:
    """The DID checks read `numbers/` ranges of `_all_dbs` and must see a database the
    moment it is created or deleted, in CouchDB's order and bounds."""
    prefix = f"numbers/+9{secrets.token_hex(3)}"
    made = [f"{prefix}1", f"{prefix}2", f"{prefix}3"]
    for name in made:
        async with http.put(url(embedded.url, name)) as resp:
            assert resp.status == 201

    async def names(**query: Any) -> list[str]:
        status, body = await get_json(http, url(embedded.url, "_all_dbs", **query))
        assert status == 200
        return body

    def key(name: str) -> str:
        return json.dumps(name)

    span = {"startkey": key(prefix), "endkey": key(prefix + "\ufff0")}
    assert await names(**span) == made
    assert await names(startkey=key(made[1]), endkey=key(made[2]), inclusive_end=False) == [made[1]]
    assert await names(startkey=key(made[2]), endkey=key(prefix), descending=True) == made[::-1]
    assert await names(**span, skip=1, limit=1) == [made[1]]
    assert await names(startkey=key(made[2]), endkey=key(made[0])) == []
    async with http.put(url(embedded.url, f"{prefix}0")) as resp:
        assert resp.status == 201
    async with http.delete(url(embedded.url, made[1])) as resp:
        assert resp.status == 200
    assert await names(**span) == [f"{prefix}0", made[0], made[2]]
    everything = await names()
    assert everything == sorted(everything) and f"{prefix}0" in everything


async def test_url_id_wins_over_body_id(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    await put_doc(http, embedded.url, db, "_design/x", {"_id": "other", "views": {}})
    await put_doc(http, embedded.url, db, "_local/y", {"_id": "_local/other"})
    await put_doc(http, embedded.url, db, "plain", {"_id": "wrong"})
    for doc_id in ("_design/x", "_local/y", "plain"):
        status, doc = await get_json(http, url(embedded.url, db, doc_id))
        assert (status, doc["_id"]) == (200, doc_id)
    for doc_id in ("other", "_local/other", "wrong"):
        status, _ = await get_json(http, url(embedded.url, db, doc_id))
        assert status == 404


async def test_etag_is_the_quoted_revision(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    rev = await put_doc(http, embedded.url, db, "doc", {"a": 1})
    async with http.get(url(embedded.url, db, "doc")) as resp:
        assert resp.headers["ETag"] == f'"{rev}"'
    async with http.get(
        url(embedded.url, db, "doc"), headers={"If-None-Match": f'"{rev}"'}
    ) as resp:
        assert resp.status == 304
    async with http.get(url(embedded.url, db, "_all_docs")) as resp:
        assert resp.status == 200
        assert "ETag" not in resp.headers


async def test_up_answers_without_credentials(embedded: EmbeddedCouch) -> None:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{embedded.url}/_up") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_requests_without_valid_credentials_get_401(embedded: EmbeddedCouch) -> None:
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
    for headers in ({}, wrong):
        async with aiohttp.ClientSession(headers=headers) as session:
            for method, path in (("GET", "/_all_dbs"), ("PUT", "/sneaky"), ("GET", "/")):
                async with session.request(method, embedded.url + path) as resp:
                    assert resp.status == 401
                    assert (await resp.json())["error"] == "unauthorized"


async def test_basic_credentials_are_checked_however_they_are_spelled(
    embedded: EmbeddedCouch,
) -> None:
    """The usual header is checked by one digest, any other spelling by parsing it: both
    must accept the admin's credentials and nothing near them."""

    def basic(credentials: str, scheme: str = "Basic", gap: str = " ") -> str:
        return scheme + gap + base64.b64encode(credentials.encode()).decode()

    accepted = [
        basic(f"{USER}:{PASSWORD}"),
        basic(f"{USER}:{PASSWORD}", scheme="basic"),
        basic(f"{USER}:{PASSWORD}", gap="   "),
        basic(f"{USER}:{PASSWORD}") + "  ",
    ]
    refused = [
        basic(f"{USER}:{PASSWORD}x"),
        basic(f"{USER}:{PASSWORD[:-1]}"),
        basic(f"{USER}x:{PASSWORD}"),
        basic(f"{USER}"),
        basic(f"{USER}:"),
        "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    ]
    async with aiohttp.ClientSession() as session:
        for header in accepted + refused:
            async with session.get(
                f"{embedded.url}/_all_dbs", headers={"Authorization": header}
            ) as resp:
                assert resp.status == (200 if header in accepted else 401), header


async def test_session_cookie_login(embedded: EmbeddedCouch) -> None:
    # unsafe=True: aiohttp's jar otherwise ignores cookies from IP-address hosts
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        login = {"name": USER, "password": PASSWORD}
        async with session.post(f"{embedded.url}/_session", json=login) as resp:
            assert resp.status == 200
            assert (await resp.json())["roles"] == ["_admin"]
        async with session.get(f"{embedded.url}/_all_dbs") as resp:
            assert resp.status == 200


async def test_creating_an_existing_database_is_412(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    async with http.put(url(embedded.url, db)) as resp:
        assert resp.status == 412
        assert (await resp.json())["error"] == "file_exists"


async def test_stale_revision_is_409(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    first = await put_doc(http, embedded.url, db, "doc", {"v": 1})
    second = await put_doc(http, embedded.url, db, "doc", {"v": 2, "_rev": first})
    async with http.put(url(embedded.url, db, "doc"), json={"v": 3, "_rev": first}) as resp:
        assert resp.status == 409
        assert await resp.json() == {"error": "conflict", "reason": "Document update conflict."}
    async with http.delete(url(embedded.url, db, "doc", rev=first)) as resp:
        assert resp.status == 409
    async with http.delete(url(embedded.url, db, "doc", rev=second)) as resp:
        assert resp.status == 200


COUNT_VIEW = {
    "views": {
        "by_n": {"map": "function (doc) { if (doc.n) { emit(doc.n, null); } }", "reduce": "_count"},
    }
}


async def test_view_with_count_reduce(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    docs = [{"_id": f"d{n}", "n": n} for n in range(1, 6)]
    async with http.post(url(embedded.url, db, "_bulk_docs"), json={"docs": docs}) as resp:
        assert resp.status == 201
    await put_doc(http, embedded.url, db, "_design/counts", COUNT_VIEW)
    by_n = view_url(embedded.url, db, "counts", "by_n")

    status, body = await get_json(http, by_n)
    assert (status, body["rows"]) == (200, [{"key": None, "value": 5}])
    query = {"reduce": "false", "descending": "true", "limit": "2"}
    status, body = await get_json(http, by_n.with_query(query))
    assert [row["key"] for row in body["rows"]] == [5, 4]
    query = {"reduce": "false", "startkey": "3", "endkey": "4", "include_docs": "true"}
    status, body = await get_json(http, by_n.with_query(query))
    assert [row["doc"]["_id"] for row in body["rows"]] == ["d3", "d4"]
    query = {"reduce": "false", "skip": "1", "limit": "2"}
    status, body = await get_json(http, by_n.with_query(query))
    assert [row["key"] for row in body["rows"]] == [2, 3]
    status, body = await get_json(http, by_n.with_query({"key": "3", "reduce": "false"}))
    assert [row["id"] for row in body["rows"]] == ["d3"]
    status, body = await get_json(http, by_n.with_query({"startkey": "2"}))
    assert body["rows"] == [{"key": None, "value": 4}]
    status, body = await get_json(http, by_n.with_query({"keys": "[1,5]", "reduce": "false"}))
    assert [row["id"] for row in body["rows"]] == ["d1", "d5"]


LEGACY_VIEW = {
    "views": {
        "names": {
            "map": """function (doc) {
                emit('partial-' + doc._id, null);
                if (doc.explode) { throw new Error('bad doc'); }
                copy = JSON.parse(JSON.stringify(doc.tags || {}));
                for (var key in copy) { emit(key.toLowerCase(), copy[key]); }
                for (var i = 0; i < (doc.list || []).length; i++) { emit(doc.list[i], i); }
            }""",
        },
    }
}


async def test_map_error_drops_only_that_docs_rows(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    await put_doc(http, embedded.url, db, "_design/legacy", LEGACY_VIEW)
    await put_doc(http, embedded.url, db, "good", {"tags": {"Red": 1}, "list": ["x"]})
    await put_doc(http, embedded.url, db, "bad", {"explode": True, "tags": {"Blue": 2}})
    await put_doc(http, embedded.url, db, "also-good", {"tags": {"GREEN": 3}})
    status, body = await get_json(http, view_url(embedded.url, db, "legacy", "names"))
    assert status == 200
    rows = {(row["id"], row["key"]) for row in body["rows"]}
    assert rows == {
        ("good", "partial-good"),
        ("good", "red"),
        ("good", "x"),
        ("also-good", "partial-also-good"),
        ("also-good", "green"),
    }


async def test_crashing_requests_get_errors_and_server_keeps_serving(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    await put_doc(http, embedded.url, db, "_design/d", {"views": {}})
    await put_doc(http, embedded.url, db, "doc", {})
    changes = url(embedded.url, db, "_changes")
    expected = {
        "_selector": 400,  # no selector in a POST body
        "nope/filter": 404,  # no such design doc
        "d/missing": 404,  # design doc without that filter
        "_view": 400,  # no view parameter
    }
    for name, status in expected.items():
        async with http.get(changes.with_query(filter=name)) as resp:
            assert resp.status == status, name
            assert "error" in await resp.json()
    status, body = await get_json(http, changes.with_query(filter="_design"))
    assert [row["id"] for row in body["results"]] == ["_design/d"]
    async with http.post(url(embedded.url, "_replicate"), json={"source": "x"}) as resp:
        assert resp.status == 400
    # PouchDB throws asynchronously on this body; the crash guard answers it
    async with http.post(url(embedded.url, db, "_revs_diff"), json={"doc": 5}) as resp:
        assert resp.status == 500
        assert (await resp.json())["error"] == "unknown_error"
    assert embedded.running
    status, body = await get_json(http, url(embedded.url, db, "doc"))
    assert status == 200


async def test_longpoll_honours_timeout_and_continuous_feed_streams(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    changes = url(embedded.url, db, "_changes")
    # The server's own longpoll default is 60 s: answered well before, the 300 ms were
    # honoured (a generous deadline for that answer, not a speed check).
    status, body = await asyncio.wait_for(
        get_json(http, changes.with_query(feed="longpoll", since="now", timeout="300")), 30
    )
    assert status == 200 and body["results"] == []
    await put_doc(http, embedded.url, db, "doc", {})
    # aiohttp asks for gzip by default, which starved express-pouchdb's feed
    async with http.get(changes.with_query(feed="continuous", timeout="200")) as resp:
        lines = [json.loads(line) for line in (await resp.text()).splitlines() if line]
    assert lines[0]["id"] == "doc"
    assert "last_seq" in lines[-1]


async def test_replication_between_two_processes(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession
) -> None:
    name = "account/aa/bb/replicated"
    async with http.put(url(embedded.url, name)) as resp:
        assert resp.status == 201
    await put_doc(http, embedded.url, name, "from-first", {"v": 1})
    remote = f"{embedded.credentials_url}/{quote(name, safe='')}"
    async with EmbeddedCouch(EmbeddedOptions(admin_password=PASSWORD)) as other:
        pull = {"source": remote, "target": name, "create_target": True}
        async with http.post(url(other.url, "_replicate"), json=pull) as resp:
            assert resp.status == 200, await resp.text()
        status, doc = await get_json(http, url(other.url, name, "from-first"))
        assert (status, doc["v"]) == (200, 1)
        await put_doc(http, other.url, name, "from-second", {"v": 2})
        push = {"source": name, "target": remote}
        async with http.post(url(other.url, "_replicate"), json=push) as resp:
            assert resp.status == 200, await resp.text()
    status, doc = await get_json(http, url(embedded.url, name, "from-second"))
    assert (status, doc["v"]) == (200, 2)


async def test_server_log_reaches_python_logging_without_credentials(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.couchdb.embedded")
    missing = f"{embedded.credentials_url}/{quote('account/no/such/db', safe='')}"
    body = {"source": missing, "target": "anything", "create_target": True}
    async with http.post(url(embedded.url, "_replicate"), json=body) as resp:
        assert resp.status == 404
    deadline = time.monotonic() + 30  # the log arrives through the stderr pipe
    while "replication" not in caplog.text:
        assert time.monotonic() < deadline, "the server's log line never arrived"
        await asyncio.sleep(0.02)
    assert "account%2Fno%2Fsuch%2Fdb" in caplog.text
    assert PASSWORD not in caplog.text
    assert all(record.name == "service.couchdb.embedded" for record in caplog.records)


async def test_leveldb_data_survives_restart(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    options = EmbeddedOptions(admin_password=PASSWORD, data_dir=tmp_path / "data")
    async with EmbeddedCouch(options) as first:
        async with http.put(url(first.url, NUMBERS_DB)) as resp:
            assert resp.status == 201
        await put_doc(http, first.url, NUMBERS_DB, "_design/counts", COUNT_VIEW)
        await put_doc(http, first.url, NUMBERS_DB, "kept", {"n": 7})
    async with EmbeddedCouch(options) as second:
        status, names = await get_json(http, url(second.url, "_all_dbs"))
        assert NUMBERS_DB in names
        status, doc = await get_json(http, url(second.url, NUMBERS_DB, "kept"))
        assert (status, doc["n"]) == (200, 7)
        status, body = await get_json(http, view_url(second.url, NUMBERS_DB, "counts", "by_n"))
        assert body["rows"] == [{"key": None, "value": 1}]


async def test_sigterm_exits_zero_even_with_an_open_feed(
    http: aiohttp.ClientSession,
) -> None:
    server = EmbeddedCouch(EmbeddedOptions(admin_password=PASSWORD))
    await server.start()
    async with http.put(url(server.url, "waiting")) as resp:
        assert resp.status == 201
    feed = url(server.url, "waiting", "_changes", feed="continuous", since="now", heartbeat="100")
    async with http.get(feed, headers={"Accept-Encoding": "identity"}) as resp:
        assert resp.status == 200  # the answer has begun: the feed is open on the server
        await server.stop(grace=5.0)
        # Not killed at the end of the grace period (that exits non-zero): the open feed
        # was ended rather than holding up the exit.
        assert await server.wait_exit() == 0
        assert not server.running
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), 30)


async def test_url_before_start_is_an_error() -> None:
    server = EmbeddedCouch(EmbeddedOptions(admin_password=PASSWORD))
    with pytest.raises(EmbeddedCouchError):
        _ = server.url
    assert not server.running


# --- reading by revision: open_revs and _bulk_get, as Apache CouchDB's replicator does ---


@dataclass
class Part:
    """One part of a multipart answer; `nested` holds a multipart/related part's parts."""

    headers: Mapping[str, str]
    body: bytes
    nested: list[Part]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """Parts of a multipart body, by the standard library's MIME parser (aiohttp's reader
    mis-reads a nested part followed at once by the outer boundary, which CouchDB sends)."""
    raw = b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    return [as_part(sub) for sub in message.get_payload()]


def as_part(message: email.message.Message) -> Part:
    assert not message.defects, message.defects
    headers = dict(message.items())
    if message.is_multipart():
        return Part(headers, b"", [as_part(sub) for sub in message.get_payload()])
    return Part(headers, message.get_payload(decode=True), [])


async def get_multipart(http: aiohttp.ClientSession, target: URL) -> list[Part]:
    async with http.get(target, headers={"Accept": "multipart/mixed"}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "multipart/mixed"
        assert re.search(r'boundary="[^"]+"', resp.headers["Content-Type"])
        return parse_multipart(resp.headers["Content-Type"], await resp.read())


async def get_json_list(http: aiohttp.ClientSession, target: URL) -> list[Json]:
    async with http.get(target, headers={"Accept": "application/json"}) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        body: list[Json] = await resp.json()
        return body


# Loses to any other revision 3 (CouchDB's tie-break is the higher hash), so the
# leaf with the attachment wins and comes first in open_revs=all answers.
CONFLICT_HASH = "0" * 32


async def trunk_with_history(http: aiohttp.ClientSession, base: str, db: str) -> list[str]:
    """`trunk`: rev 1, rev 2, rev 3 adding `notes.txt`, and a conflicting `3-000…` branch
    off rev 2 written as replication writes it. Returns [rev1, rev2, rev3, conflict]."""
    first = await put_doc(http, base, db, "trunk", {"pvt_type": "sys_info", "name": "v1"})
    second = await put_doc(
        http, base, db, "trunk", {"_rev": first, "pvt_type": "sys_info", "name": "v2"}
    )
    attachment = url(base, db, "trunk", "notes.txt", rev=second)
    async with http.put(
        attachment, data=b"hello trunk", headers={"Content-Type": "text/plain"}
    ) as r:
        assert r.status == 201, await r.text()
        third = str((await r.json())["rev"])
    history = [CONFLICT_HASH, second.split("-")[1], first.split("-")[1]]
    branch = {"_rev": f"3-{CONFLICT_HASH}", "_revisions": {"start": 3, "ids": history}}
    async with http.put(
        url(base, db, "trunk", new_edits="false"),
        json={**branch, "pvt_type": "sys_info", "name": "conflict"},
    ) as resp:
        assert resp.status == 201, await resp.text()
    return [first, second, third, f"3-{CONFLICT_HASH}"]


async def test_open_revs_answers_multipart_mixed_like_couchdb(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    _, second, third, conflict = await trunk_with_history(http, embedded.url, db)
    parts = await get_multipart(
        http, url(embedded.url, db, "trunk", open_revs="all", revs="true", latest="true")
    )
    by_type = {part.headers["Content-Type"].split(";")[0]: part for part in parts}
    # the winner first, then the conflict: a nested part followed by the outer boundary
    assert list(by_type) == ["multipart/related", "application/json"]
    # the replicator matches the part's Content-Type exactly: no charset
    plain = by_type["application/json"]
    assert plain.headers["Content-Type"] == "application/json"
    assert plain.json["_rev"] == conflict and plain.json["name"] == "conflict"
    assert plain.json["_revisions"]["ids"][1] == second.split("-")[1]
    # the revision with an attachment: its JSON, then the attachment's bytes
    doc_part, data_part = by_type["multipart/related"].nested
    doc = doc_part.json
    assert (doc["_rev"], doc["_revisions"]["start"]) == (third, 3)
    assert doc["_attachments"]["notes.txt"] == {
        "content_type": "text/plain",
        "revpos": 3,
        "digest": doc["_attachments"]["notes.txt"]["digest"],
        "length": 11,
        "follows": True,
    }
    assert data_part.body == b"hello trunk"
    assert data_part.headers["Content-Length"] == "11"
    assert 'filename="notes.txt"' in data_part.headers["Content-Disposition"]
    # atts_since naming the revision that added it: a stub, no nested part
    parts = await get_multipart(
        http,
        url(embedded.url, db, "trunk", open_revs=[third], revs="true", atts_since=[third]),
    )
    assert [p.headers["Content-Type"] for p in parts] == ["application/json"]
    assert parts[0].json["_attachments"]["notes.txt"]["stub"] is True


async def test_open_revs_reports_missing_revisions(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    rev = await put_doc(http, embedded.url, db, "doc", {"v": 1})
    asked = url(embedded.url, db, "doc", open_revs=[rev, "9-" + "0" * 32])
    parts = await get_multipart(http, asked)
    assert [p.headers["Content-Type"] for p in parts] == [
        "application/json",
        'application/json; error="true"',
    ]
    assert parts[0].json["_rev"] == rev
    assert parts[1].json == {"missing": "9-" + "0" * 32}
    assert await get_json_list(http, asked) == [
        {"ok": {"_id": "doc", "_rev": rev, "v": 1}},
        {"missing": "9-" + "0" * 32},
    ]
    never = url(embedded.url, db, "never-written", open_revs=["1-abc"])
    assert await get_json_list(http, never) == [{"missing": "1-abc"}]
    status, body = await get_json(http, url(embedded.url, db, "never-written", open_revs="all"))
    assert (status, body) == (404, {"error": "not_found", "reason": "missing"})
    status, body = await get_json(http, url(embedded.url, db, "doc", open_revs=["nonsense"]))
    assert (status, body) == (400, {"error": "bad_request", "reason": "Invalid rev format"})


async def test_open_revs_json_when_the_client_asks_for_json(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    first, _, third, conflict = await trunk_with_history(http, embedded.url, db)
    # latest: the leaves grown from rev 1 (both branches), not rev 1 itself
    leaves = await get_json_list(
        http, url(embedded.url, db, "trunk", open_revs=[first], latest="true")
    )
    by_rev = {entry["ok"]["_rev"]: entry["ok"] for entry in leaves}
    assert set(by_rev) == {conflict, third}
    stub = by_rev[third]["_attachments"]["notes.txt"]
    assert (stub["stub"], stub["length"]) == (True, 11)
    inline = await get_json_list(
        http, url(embedded.url, db, "trunk", open_revs=[third], attachments="true")
    )
    encoded = inline[0]["ok"]["_attachments"]["notes.txt"]["data"]
    assert base64.b64decode(encoded) == b"hello trunk"
    # CouchDB reads a request without Accept as */*, which takes multipart
    async with http.get(
        url(embedded.url, db, "trunk", open_revs="all"), skip_auto_headers=("Accept",)
    ) as resp:
        assert resp.content_type == "multipart/mixed"


async def test_bulk_get_answers_each_request_in_its_slot(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    first, second, third, conflict = await trunk_with_history(http, embedded.url, db)
    plain = await put_doc(http, embedded.url, db, "plain", {"v": 1})
    absent = "7-" + "0" * 32
    requests = [
        {"id": "trunk", "rev": third},
        {"id": "plain", "rev": plain},
        {"id": "trunk", "rev": absent},
        {"id": "trunk", "rev": second},  # latest: both leaves grown from it
        {"id": "trunk"},  # no rev: every leaf
        {"id": "never-written"},
        {"id": "_illegal"},
    ]
    # the flags as Apache's replicator sends them; "false" must stay false
    query = {"latest": "true", "revs": "true", "attachments": "false"}
    async with http.post(
        url(embedded.url, db, "_bulk_get", **query), json={"docs": requests}
    ) as resp:
        assert resp.status == 200, await resp.text()
        results = (await resp.json())["results"]
    assert [r["id"] for r in results] == [request["id"] for request in requests]
    revs = [[entry.get("ok", {}).get("_rev") for entry in r["docs"]] for r in results]
    assert revs[:2] == [[third], [plain]]
    assert sorted(revs[3]) == sorted(revs[4]) == sorted([third, conflict])
    trunk = results[0]["docs"][0]["ok"]
    assert trunk["_attachments"]["notes.txt"]["stub"] is True
    assert trunk["_revisions"]["ids"][2] == first.split("-")[1]
    missing = {"id": "trunk", "rev": absent, "error": "not_found", "reason": "missing"}
    assert results[2]["docs"] == [{"error": missing}]
    assert results[5]["docs"][0]["error"]["rev"] == "undefined"
    assert results[6]["docs"][0]["error"]["error"] == "illegal_docid"
    async with http.post(url(embedded.url, db, "_bulk_get", rev="1-x"), json={"docs": []}) as resp:
        assert resp.status == 400


TRUNKSTORE_DDOC = {
    "language": "javascript",
    "views": {
        "crossbar_listing": {
            "map": "function (doc) { if (doc.pvt_type == 'sys_info') { emit(doc._id, null); } }"
        }
    },
}


@requires_apache_couch
async def test_apache_couchdb_pulls_an_account_db_from_embedded(
    embedded: EmbeddedCouch, http: aiohttp.ClientSession, db: str
) -> None:
    """Apache's replicator reads design docs and docs with attachments with open_revs
    (multipart/mixed) and the rest with _bulk_get; everything must arrive."""
    _, _, third, conflict = await trunk_with_history(http, embedded.url, db)
    await put_doc(http, embedded.url, db, "_design/trunkstore", TRUNKSTORE_DDOC)
    await put_doc(http, embedded.url, db, "plain", {"pvt_type": "sys_info"})
    apache_url, authorization = split_credentials(str(APACHE_COUCH_URL))
    target = f"account/ap/ac/he{secrets.token_hex(14)}"
    pull = {
        "source": f"{embedded.credentials_url}/{quote(db, safe='')}",
        "target": f"{APACHE_COUCH_URL}/{quote(target, safe='')}",
        "create_target": True,
    }
    apache_headers = {"Authorization": authorization or ""}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=apache_headers, timeout=timeout) as apache:
        try:
            async with apache.post(url(apache_url, "_replicate"), json=pull) as resp:
                assert resp.status == 200, await resp.text()
                report = await resp.json()
            history = report["history"][0]
            assert report["ok"] and history["doc_write_failures"] == 0
            # both paths ran: _bulk_get for plain docs, open_revs for the attachment
            assert 0 < history["bulk_get_docs"] < history["bulk_get_attempts"]
            status, rows = await get_json(apache, url(apache_url, target, "_all_docs"))
            ids = [row["id"] for row in rows["rows"]]
            assert (status, ids) == (200, ["_design/trunkstore", "plain", "trunk"])
            status, doc = await get_json(apache, url(apache_url, target, "trunk", conflicts="true"))
            assert (status, doc["_rev"], doc["_conflicts"]) == (200, third, [conflict])
            async with apache.get(url(apache_url, target, "trunk", "notes.txt", rev=third)) as r:
                assert await r.read() == b"hello trunk"
            listing = view_url(apache_url, target, "trunkstore", "crossbar_listing")
            status, body = await get_json(apache, listing)
            assert (status, [row["id"] for row in body["rows"]]) == (200, ["plain", "trunk"])
        finally:
            await apache.delete(url(apache_url, target))


async def test_an_idle_kept_alive_connection_outlives_the_clients_own_idle_limit(
    embedded: EmbeddedCouch,
) -> None:
    """Node closes idle connections after 5 s by default, aiohttp reuses them for 15 s: a
    POST sent as the server closes its connection is lost, and aiohttp resends only
    idempotent requests. The server keeps an idle connection past that moment."""
    target = URL(embedded.url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    request = (
        f"GET / HTTP/1.1\r\nHost: {target.host}\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n"
    ).encode()
    try:
        for pause in (0.0, 6.0):
            await asyncio.sleep(pause)
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
    finally:
        writer.close()
