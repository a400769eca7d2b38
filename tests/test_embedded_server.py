"""The embedded CouchDB-compatible server, started through EmbeddedCouch.

Each test checks one behaviour the service relies on and that unmodified
express-pouchdb got wrong (shared couchdb/EMBEDDED.md), over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from service.embedded import EmbeddedCouch, EmbeddedCouchError, EmbeddedOptions

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER = "admin"
PASSWORD = "s3cret-Pa55"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
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
    started = time.monotonic()
    status, body = await get_json(
        http, changes.with_query(feed="longpoll", since="now", timeout="300")
    )
    assert status == 200 and body["results"] == []
    assert time.monotonic() - started < 3
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
    caplog.set_level(logging.INFO, logger="service.embedded")
    missing = f"{embedded.credentials_url}/{quote('account/no/such/db', safe='')}"
    body = {"source": missing, "target": "anything", "create_target": True}
    async with http.post(url(embedded.url, "_replicate"), json=body) as resp:
        assert resp.status == 404
    for _ in range(100):  # the log arrives through the stderr pipe
        if "replication" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "account%2Fno%2Fsuch%2Fdb" in caplog.text
    assert PASSWORD not in caplog.text
    assert all(record.name == "service.embedded" for record in caplog.records)


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


async def test_sigterm_exits_zero_quickly_even_with_open_feed(
    http: aiohttp.ClientSession,
) -> None:
    server = EmbeddedCouch(EmbeddedOptions(admin_password=PASSWORD))
    await server.start()
    async with http.put(url(server.url, "waiting")) as resp:
        assert resp.status == 201
    feed = asyncio.create_task(
        get_json(http, url(server.url, "waiting", "_changes", feed="longpoll", since="now"))
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await server.stop(grace=5.0)
    assert await server.wait_exit() == 0
    assert time.monotonic() - started < 2.0
    assert not server.running
    # the open longpoll was answered (empty) rather than holding up the exit
    status, body = await asyncio.wait_for(feed, 1.0)
    assert (status, body["results"]) == (200, [])


async def test_url_before_start_is_an_error() -> None:
    server = EmbeddedCouch(EmbeddedOptions(admin_password=PASSWORD))
    with pytest.raises(EmbeddedCouchError):
        _ = server.url
    assert not server.running
