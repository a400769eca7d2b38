"""CouchDB misbehaving under the service: down, cut, slow, 5xx, 202.

A fault proxy (tests/faultproxy.py) sits between a second service instance and the
suite's CouchDB. Every fault must end as a KAZOO 503 (never a 500), leave no
half-written document, be logged, and the very next request after the fault must
work without restarting anything.

The CouchDB client resends a PUT/GET/DELETE once when its connection drops (aiohttp
does, RFC 9112 §9.3.1), so a single cut before CouchDB committed is invisible to the
client; two cuts in a row give the 503.

A save whose connection is cut *after* CouchDB committed is ambiguous for the
service: the resend then meets its own first attempt as a 409, and the service answers
503 (outcome unknown) rather than a misleading "conflict". The document is complete
(CouchDB writes are atomic), and a client that retries its PUT with the id it chose
gets 409 `datastore_conflict`, which tells it the first attempt landed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import yarl
from aiohttp.test_utils import TestClient
from conftest import APACHE_COUCH_URL
from faultproxy import FaultProxy
from helpers import assert_kazoo_error, call, create_trunk
from instances import PROMPTLY, instance, instance_for, now, until
from reliability import FIGURES, unique_trunk

from service.couchdb.client import CouchClient, DocumentNotFound
from service.couchdb.embedded import EmbeddedCouch, EmbeddedOptions
from service.couchdb.runtime import with_credentials
from service.http.services import SERVICES
from service.kazoo.ids import new_id
from service.stores.accounts import AccountStore

SLOW_COUCH_TIMEOUT = 1.0


@pytest_asyncio.fixture(scope="module")
async def faulty(proxy: FaultProxy) -> AsyncIterator[TestClient]:
    """A service instance whose CouchDB traffic goes through the fault proxy."""
    client = await instance_for(proxy.url)
    yield client
    await client.close()


@pytest_asyncio.fixture(scope="module")
async def slow(proxy: FaultProxy) -> AsyncIterator[TestClient]:
    """The same, with a short CouchDB timeout (CONNECTIVITY_COUCH_TIMEOUT)."""
    client = await instance_for(proxy.url, couch_timeout=SLOW_COUCH_TIMEOUT)
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def _fresh_proxy(proxy: FaultProxy):
    proxy.clear()
    proxy.injected.clear()
    yield
    FIGURES["faults_injected"] += len(proxy.injected)
    proxy.clear()


def _fault_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() in ("couchdb unreachable", "couchdb fault")]


async def _create(api: TestClient, owner, doc_id: str | None = None, **fields) -> dict:
    body = unique_trunk(**fields)
    if doc_id is not None:
        body["id"] = doc_id
    return (await create_trunk(api, owner, body)).body


async def _assert_absent(api: TestClient, couch: CouchClient, account, doc_id: str) -> None:
    reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
    assert_kazoo_error(reply, 404, "bad_identifier")
    with pytest.raises(DocumentNotFound):
        await couch.get_doc(account.db, doc_id)


async def test_couchdb_down_at_start_up(couch_url, master, caplog):
    down = await FaultProxy(couch_url).start()
    await down.go_down()
    api = await instance_for(down.url)
    try:
        alive = await call(api, "GET", "/__lbheartbeat__")
        assert alive.status == 200
        health = await call(api, "GET", "/__heartbeat__")
        assert health.status == 503
        assert health.body == {"couchdb": False}
        listing = await call(api, "GET", master.url(), token=master.token)
        refused = {"message": "datastore connection refused"}
        assert assert_kazoo_error(listing, 503, "datastore_unreachable") == refused
        login = await call(api, "PUT", "/v2/api_auth", data={"api_key": master.api_key})
        assert_kazoo_error(login, 503, "datastore_unreachable")
        refused = _fault_records(caplog)
        assert len(refused) >= 3, "every CouchDB fault is logged (heartbeat, listing, login)"

        await down.come_up()
        assert (await call(api, "GET", "/__heartbeat__")).status == 200
        listing = await call(api, "GET", master.url(), token=master.token)
        assert listing.status == 200, listing.text
        created = await call(api, "PUT", master.url(), data={"name": "after"}, token=master.token)
        assert created.status == 201
    finally:
        await api.close()
        await down.stop()
    FIGURES["faults_injected"] += len(refused)


async def test_one_cut_before_commit_is_resent_transparently(faulty, proxy, couch, master):
    doc_id = new_id()
    proxy.inject("cut_request", method="PUT", path_contains=f"/{doc_id}")
    reply = await call(
        faulty, "PUT", master.url(), data=unique_trunk(id=doc_id), token=master.token
    )
    assert reply.status == 201, reply.text
    assert len(proxy.injected) == 1
    stored = await couch.get_doc(master.db, doc_id)
    assert stored["_rev"].startswith("1-")


async def test_cuts_during_a_create_before_commit_leave_nothing(
    faulty, proxy, couch, master, caplog
):
    doc_id = new_id()
    proxy.inject("cut_request", method="PUT", path_contains=f"/{doc_id}", times=2)
    reply = await call(
        faulty, "PUT", master.url(), data=unique_trunk(id=doc_id), token=master.token
    )
    assert_kazoo_error(reply, 503, "datastore_unreachable")
    assert len(proxy.injected) == 2, "the fault fired on the request and on its resend"
    await _assert_absent(faulty, couch, master, doc_id)
    records = _fault_records(caplog)
    assert records and records[0].couch_method == "PUT"
    retried = await _create(faulty, master, doc_id)
    assert retried["data"]["id"] == doc_id


async def test_cut_after_commit_is_a_503_and_the_doc_is_whole(
    faulty, proxy, couch, master, make_account
):
    doc_id = new_id()
    body = unique_trunk(id=doc_id)
    proxy.inject("cut_response", method="PUT", path_contains=f"/{doc_id}")
    reply = await call(faulty, "PUT", master.url(), data=body, token=master.token)
    assert_kazoo_error(reply, 503, "datastore_unreachable")
    # CouchDB committed before the cut: the document is there, complete.
    stored = await call(faulty, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert stored.status == 200
    # The same body saved without a fault, in another account, for comparison.
    other = await make_account("Reference")
    reference = await _create(faulty, other, **{k: v for k, v in body.items() if k != "id"})
    assert _without_realm(stored.data) == _without_realm(reference["data"])
    raw = await couch.get_doc(master.db, doc_id)
    assert raw["pvt_type"] == "sys_info" and raw["_rev"].startswith("1-")
    # The client's retry with its own id says the first attempt landed.
    retry = await call(faulty, "PUT", master.url(), data=body, token=master.token)
    assert_kazoo_error(retry, 409, "datastore_conflict")


def _without_realm(view: dict) -> dict:
    view = {k: v for k, v in view.items() if k != "id"}
    view["account"] = {k: v for k, v in view["account"].items() if k != "auth_realm"}
    return view


@pytest.mark.parametrize("action", ["cut_request", "cut_response"])
async def test_cut_during_an_update_leaves_old_or_new_never_a_mix(faulty, proxy, master, action):
    created = await _create(faulty, master)
    doc_id, before = created["data"]["id"], created["data"]
    replacement = {"name": "Replaced", "servers": [], "custom_field": "new"}
    # Before commit the resend would succeed, so cut it too; after commit one cut is enough.
    times = 2 if action == "cut_request" else 1
    proxy.inject(action, method="PUT", path_contains=f"/{doc_id}", times=times)
    reply = await call(
        faulty, "POST", master.url(f"/{doc_id}"), data=replacement, token=master.token
    )
    assert_kazoo_error(reply, 503, "datastore_unreachable")
    after = await call(faulty, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert after.status == 200
    if action == "cut_request":
        assert after.data == before
        assert after.body["revision"] == created["revision"]
    else:
        assert after.data["name"] == "Replaced"
        assert after.data["servers"] == [] and after.data["custom_field"] == "new"
        assert after.body["revision"].startswith("2-")
    again = await call(faulty, "PATCH", master.url(f"/{doc_id}"), data={"x": 1}, token=master.token)
    assert again.status == 200, again.text


@pytest.mark.parametrize("action", ["cut_request", "cut_response"])
async def test_cut_during_a_view_query(faulty, proxy, master, action):
    ids = {(await _create(faulty, master))["data"]["id"] for _ in range(2)}
    proxy.inject(action, path_contains="/_design/trunkstore/_view/crossbar_listing", times=2)
    reply = await call(faulty, "GET", master.url(), token=master.token)
    assert_kazoo_error(reply, 503, "datastore_unreachable")
    listing = await call(faulty, "GET", master.url(), token=master.token)
    assert listing.status == 200
    assert set(listing.data) == ids


async def test_slow_read_past_the_timeout(slow, proxy, master, caplog):
    doc_id = (await _create(slow, master))["data"]["id"]
    held = proxy.inject("delay_response", method="GET", path_contains=f"/{doc_id}", delay=30.0)
    started = time.monotonic()
    reply = await call(slow, "GET", master.url(f"/{doc_id}"), token=master.token)
    data = assert_kazoo_error(reply, 503, "datastore_unreachable")
    assert data == {"message": "datastore timeout"}
    # The service gave up at its timeout, while CouchDB's answer was still held back.
    assert time.monotonic() - started >= SLOW_COUCH_TIMEOUT
    assert not held.done.is_set()
    assert any(getattr(r, "fault", "") for r in _fault_records(caplog))
    again = await call(slow, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert again.status == 200


async def test_slow_save_that_never_reached_couchdb(slow, proxy, couch, master):
    """The network lost the save (the proxy drops it once the service gave up): the
    service answers 503 and writes nothing behind the client's back, so the client's
    retry with its own id creates the doc."""
    doc_id = new_id()
    held = proxy.inject("delay_request", method="PUT", path_contains=f"/{doc_id}", delay=2.0)
    reply = await call(slow, "PUT", master.url(), data=unique_trunk(id=doc_id), token=master.token)
    assert_kazoo_error(reply, 503, "datastore_unreachable")
    await asyncio.wait_for(held.done.wait(), PROMPTLY)
    await _assert_absent(slow, couch, master, doc_id)
    assert (await _create(slow, master, doc_id))["data"]["id"] == doc_id


async def test_slow_save_that_reached_couchdb_after_the_timeout(slow, proxy, couch, master):
    """The save reached CouchDB after the service gave up: the 503 said "outcome
    unknown", the doc is whole, and the client's retry with its id says it landed."""
    doc_id = new_id()
    body = unique_trunk(id=doc_id)
    held = proxy.inject(
        "delay_request", method="PUT", path_contains=f"/{doc_id}", delay=2.0, forward_late=True
    )
    reply = await call(slow, "PUT", master.url(), data=body, token=master.token)
    assert_kazoo_error(reply, 503, "datastore_unreachable")
    await asyncio.wait_for(held.done.wait(), PROMPTLY)

    async def landed() -> bool:
        try:
            await couch.get_doc(master.db, doc_id)
        except DocumentNotFound:
            return False
        return True

    await until(landed, "the late save to reach CouchDB")
    stored = await call(slow, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert stored.status == 200
    assert list(stored.data["servers"][0]["DIDs"]) == list(body["servers"][0]["DIDs"])
    assert stored.data["custom_field"] == body["custom_field"]
    retry = await call(slow, "PUT", master.url(), data=body, token=master.token)
    assert_kazoo_error(retry, 409, "datastore_conflict")


async def test_slow_answer_to_a_save_that_committed(slow, proxy, master):
    created = await _create(slow, master)
    doc_id = created["data"]["id"]
    proxy.inject("delay_response", method="PUT", path_contains=f"/{doc_id}", delay=2.0)
    reply = await call(
        slow, "PATCH", master.url(f"/{doc_id}"), data={"custom_field": 7}, token=master.token
    )
    assert_kazoo_error(reply, 503, "datastore_unreachable")
    after = await call(slow, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert after.data == {**created["data"], "custom_field": 7}
    assert after.body["revision"].startswith("2-")


@pytest.mark.parametrize("status", [500, 503])
async def test_couchdb_answering_5xx(faulty, proxy, couch, master, caplog, status):
    doc_id = (await _create(faulty, master))["data"]["id"]
    proxy.inject("respond", method="GET", path_contains=f"/{doc_id}", status=status)
    reply = await call(faulty, "GET", master.url(f"/{doc_id}"), token=master.token)
    # CouchDB was reached and answered a fault: said so, not "timeout".
    fault = {"cause": f"couchdb answered {status}", "message": "datastore fatal error"}
    assert assert_kazoo_error(reply, 503, "datastore_fault") == fault
    assert [r.couch_status for r in _fault_records(caplog)] == [status]

    new = new_id()
    proxy.inject("respond", method="PUT", path_contains=f"/{new}", status=status)
    reply = await call(faulty, "PUT", master.url(), data={"id": new}, token=master.token)
    assert assert_kazoo_error(reply, 503, "datastore_fault") == fault
    await _assert_absent(faulty, couch, master, new)

    listing_view = "/_design/trunkstore/_view/crossbar_listing"
    proxy.inject("respond", path_contains=listing_view, status=status)
    reply = await call(faulty, "GET", master.url(), token=master.token)
    assert assert_kazoo_error(reply, 503, "datastore_fault") == fault

    assert (await call(faulty, "GET", master.url(f"/{doc_id}"), token=master.token)).status == 200
    assert (await call(faulty, "GET", master.url(), token=master.token)).status == 200


async def test_couchdb_accepting_below_quorum_is_a_success_and_a_warning(
    faulty, proxy, master, caplog
):
    doc_id = new_id()
    proxy.inject("rewrite_status", method="PUT", path_contains=f"/{doc_id}", status=202)
    with caplog.at_level(logging.WARNING):
        reply = await call(
            faulty, "PUT", master.url(), data=unique_trunk(id=doc_id), token=master.token
        )
    assert reply.status == 201, reply.text
    warnings = [r for r in caplog.records if "below quorum" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert (await call(faulty, "GET", master.url(f"/{doc_id}"), token=master.token)).status == 200


async def test_couchdb_refusing_a_document_as_too_large_is_a_413(faulty, proxy, couch, master):
    """Apache CouchDB's max_document_size (8 MB by default) can refuse a body the
    service accepted, once private fields and defaults are added: a 413, not a 5xx."""
    doc_id = new_id()
    proxy.inject(
        "respond",
        method="PUT",
        path_contains=f"/{doc_id}",
        status=413,
        body=b'{"error":"document_too_large","reason":"' + doc_id.encode() + b'"}',
    )
    reply = await call(faulty, "PUT", master.url(), data={"id": doc_id}, token=master.token)
    assert_kazoo_error(reply, 413, "validation error")
    await _assert_absent(faulty, couch, master, doc_id)


# -- CouchDB refusing the service ---------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403])
async def test_couchdb_refusing_a_request_is_a_503_datastore_fault(
    faulty, proxy, couch, master, status
):
    """An answer the service has no meaning for (a bad request, credentials refused) is
    the datastore's fault: 503 `datastore_fault`, retryable, never a 500."""
    doc_id = (await _create(faulty, master))["data"]["id"]
    proxy.inject("respond", method="GET", path_contains=f"/{doc_id}", status=status)
    reply = await call(faulty, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert assert_kazoo_error(reply, 503, "datastore_fault") == {
        "cause": "datastore_fault",
        "message": "unknown failure",
    }
    new = new_id()
    proxy.inject("respond", method="PUT", path_contains=f"/{new}", status=status)
    reply = await call(faulty, "PUT", master.url(), data={"id": new}, token=master.token)
    assert_kazoo_error(reply, 503, "datastore_fault")
    await _assert_absent(faulty, couch, master, new)
    assert (await call(faulty, "GET", master.url(f"/{doc_id}"), token=master.token)).status == 200


async def test_refused_admin_credentials_are_a_503_datastore_fault(couch_url, master):
    # A user of its own: Apache CouchDB 3.4 locks a user out (from this address, even
    # with the right password) after a few failed logins, and `admin` is the suite's.
    wrong = yarl.URL(couch_url).with_user(f"nobody-{new_id()[:8]}").with_password("not-it")
    async with instance(str(wrong)) as api:
        reply = await call(api, "GET", master.url(), token=master.token)
        assert assert_kazoo_error(reply, 503, "datastore_fault") == {
            "cause": "datastore_fault",
            "message": "unknown failure",
        }
        login = await call(api, "PUT", "/v2/api_auth", data={"api_key": master.api_key})
        assert_kazoo_error(login, 503, "datastore_fault")


async def test_admin_passwords_with_url_delimiters_reach_couchdb(couch_url):
    """`@`, `:`, `%`, `/`, `?` and `#` in the admin password travel percent-encoded in
    CONNECTIVITY_COUCH_URL and are decoded once, for the Authorization header."""
    if APACHE_COUCH_URL:
        pytest.skip("the embedded server is started with the password under test")
    password = "p@ss:w%rd/?#é"
    server = EmbeddedCouch(EmbeddedOptions(admin_password=password))
    url = with_credentials(await server.start(), "admin", password)
    try:
        assert "p%40ss%3Aw%25rd%2F%3F%23" in url
        async with CouchClient(url) as client:
            assert isinstance(await client.all_dbs(), list)  # admins only
        async with instance(url) as api:
            account = await AccountStore(CouchClient(url)).create("Delimited", None, None)
            login = await call(
                api, "PUT", "/v2/api_auth", data={"api_key": account.summary["api_key"]}
            )
            assert login.status == 201, login.text
    finally:
        await server.stop()


# -- a `_changes` feed that is not one ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, b'{"error":"bad_request","reason":"refused"}'), (200, b"<html>not a feed</html>")],
    ids=["400", "200-not-json"],
)
async def test_a_changes_feed_that_is_not_one_is_never_trusted(
    proxy, couch, make_account, status, body
):
    account = await make_account("No feed")
    async with instance(proxy.url) as api:
        doc_id = (await _create(api, account))["data"]["id"]
        proxy.inject("respond", path_contains="/_changes", status=status, body=body, times=None)
        reads = api.server.app[SERVICES].reads
        for round_ in range(3):
            # Changed behind the service's back: with no feed to say so, every read asks.
            stored = await couch.get_doc(account.db, doc_id)
            await couch.put_doc(account.db, {**stored, "name": f"round {round_}"})
            reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
            assert reply.status == 200 and reply.data["name"] == f"round {round_}"
            assert not reads.is_following(account.db)
        assert [fault for fault in proxy.injected if "/_changes" in fault[2]]
        proxy.clear()
        await until(lambda: now(reads.is_following(account.db)), "the real feed to open")


@pytest.mark.parametrize("verb", ["POST", "PATCH", "DELETE"])
async def test_an_update_a_balancer_resent_after_its_answer_was_lost_is_saved_once(
    faulty, proxy, couch, master, verb
):
    """A load balancer that retries a request whose node died before answering: CouchDB
    applied the first copy and refuses the second as a conflict. The write was saved,
    so the answer is a success at that revision, not KAZOO's 409."""
    created = await _create(faulty, master)
    doc_id = created["data"]["id"]
    proxy.inject("replay_request", method="PUT", path_contains=f"/{doc_id}")
    data = {"name": "Once", "servers": []} if verb != "DELETE" else None
    reply = await call(faulty, verb, master.url(f"/{doc_id}"), data=data, token=master.token)
    assert reply.status == 200, reply.text
    assert proxy.injected[-1][0] == "replay_request"
    raw = await couch.get_doc(master.db, doc_id)
    assert raw["_rev"].startswith("2-")
    if verb == "DELETE":
        # KAZOO answers a soft delete with the revision it replaced (§8).
        assert raw["pvt_deleted"] is True
    else:
        assert raw["_rev"] == reply.body["revision"] and raw["name"] == "Once"


async def test_a_real_conflict_is_still_a_409(faulty, couch, master):
    created = await _create(faulty, master)
    doc_id = created["data"]["id"]
    stale = await couch.get_doc(master.db, doc_id)
    await couch.put_doc(master.db, {**stale, "name": "Someone else"})
    store = faulty.app[SERVICES].connectivity
    with pytest.raises(Exception) as refused:
        await store.client.put_doc(master.db, {**stale, "name": "Mine"})
    assert type(refused.value).__name__ == "DocumentConflict"
