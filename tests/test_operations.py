"""Operating the real `serve` process: SIGTERM with requests in flight, the embedded
CouchDB dying under it, and what it writes to its log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from reliability import unique_trunk
from service_process import START_TIMEOUT, ServiceProcess, is_running

from service.couchdb.client import CouchClient, DocumentNotFound
from service.couchdb.embedded import EmbeddedCouch, EmbeddedOptions
from service.couchdb.runtime import with_credentials
from service.kazoo.ids import account_db, new_id
from service.stores.accounts import AccountStore

PASSWORD = "s3cret-ops-password"


async def _login(session: aiohttp.ClientSession, service: ServiceProcess) -> tuple[dict, str]:
    """An account created as `create-account` does (directly in the service's CouchDB,
    which is quicker than running the command), and a token for it from the service."""
    admin = json.loads((service.data_dir / "couch-admin.json").read_text())
    url = with_credentials(service.embedded_url(), admin["user"], admin["password"])
    async with CouchClient(url) as client:
        account = (await AccountStore(client).create("Ops", None, None)).summary
    async with session.put(
        f"{service.url}/v2/api_auth", json={"data": {"api_key": account["api_key"]}}
    ) as resp:
        assert resp.status == 201
        token = (await resp.json())["auth_token"]
    return account, token


def _trunk(doc_id: str) -> dict[str, Any]:
    trunk = unique_trunk(id=doc_id)
    trunk["servers"][0]["auth"]["auth_password"] = PASSWORD
    return trunk


async def _put(
    session: aiohttp.ClientSession, service: ServiceProcess, account: dict, token: str, **kw: Any
) -> tuple[int, dict | None]:
    url = f"{service.url}/v2/accounts/{account['account_id']}/connectivity"
    headers = {"X-Auth-Token": token, "Content-Type": "application/json", **kw.pop("headers", {})}
    async with session.put(url, headers=headers, **kw) as resp:
        body = await resp.read()
        return resp.status, json.loads(body) if body else None


async def _trickle(
    body: bytes, seconds: float, pieces: int, streaming: asyncio.Event
) -> AsyncIterator[bytes]:
    """A slow client: the body arrives in pieces over `seconds` (chunked, no length).
    `streaming` is set once the second piece is asked for: the headers and a first
    piece are on the wire, so the service is handling the request."""
    step = max(1, len(body) // pieces)
    for number, start in enumerate(range(0, len(body), step)):
        if number == 1:
            streaming.set()
        yield body[start : start + step]
        await asyncio.sleep(seconds / pieces)


async def _get_doc(session, service, account, token, doc_id) -> int:
    url = f"{service.url}/v2/accounts/{account['account_id']}/connectivity/{doc_id}"
    async with session.get(url, headers={"X-Auth-Token": token}) as resp:
        await resp.read()
        return resp.status


@contextlib.asynccontextmanager
async def running(data_dir: Path, **settings: str) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(data_dir, **settings)
    try:
        yield await service.start()
    finally:
        await service.kill()


async def test_sigterm_drains_requests_in_flight_within_the_grace_period(tmp_path):
    grace = 2.5
    async with running(tmp_path, CONNECTIVITY_SHUTDOWN_GRACE=str(grace)) as service:
        node = service.embedded_pid()
        async with aiohttp.ClientSession() as session:
            account, token = await _login(session, service)
            ids = [new_id() for _ in range(5)]
            uploads = [_upload(session, service, account, token, doc_id, 1.0) for doc_id in ids]
            stuck_id = new_id()
            stuck, stuck_streaming = _upload(session, service, account, token, stuck_id, 30.0)
            for _task, streaming in [*uploads, (stuck, stuck_streaming)]:
                await asyncio.wait_for(streaming.wait(), START_TIMEOUT)
            service.process.send_signal(signal.SIGTERM)
            await until_refused(session, service, account, token, ids[0])
            answers = await asyncio.gather(*(task for task, _streaming in uploads))
            # Past the grace period the connection is closed: no answer, and no 5xx.
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(stuck, START_TIMEOUT)
        code = await service.wait(START_TIMEOUT)
        assert code == 0
        assert [status for status, _ in answers] == [201] * len(ids)
        assert not is_running(node), "the embedded CouchDB stopped with the service"

    records = service.log_records()  # every line is JSON
    requests = [r for r in records if r["message"] == "request"]
    for doc_id in ids:
        (line,) = [r for r in requests if r["request_id"] == f"upload-{doc_id}"]
        assert line["method"] == "PUT" and line["status"] == 201
        assert line["account_id"] == account["account_id"]
        assert line["path"] == f"/v2/accounts/{account['account_id']}/connectivity"
        assert line["duration_ms"] >= 500
    text = "\n".join(service.stderr_lines)
    assert "Unclosed" not in text, "the CouchDB session was closed"
    assert "embedded couchdb exited unexpectedly" not in text, "a planned stop is no crash"
    for secret in (token, account["api_key"], PASSWORD, _admin_password(tmp_path)):
        assert secret not in text

    # Acknowledged means stored, and the request cut at the deadline left nothing.
    async with _stored_data(tmp_path) as couch:
        db = account_db(account["account_id"])
        for doc_id in ids:
            assert (await couch.get_doc(db, doc_id))["servers"][0]["auth"]["auth_password"]
        with pytest.raises(DocumentNotFound):
            await couch.get_doc(db, stuck_id)


def _upload(
    session, service, account, token, doc_id: str, seconds: float
) -> tuple[asyncio.Task, asyncio.Event]:
    body = json.dumps({"data": _trunk(doc_id)}).encode()
    streaming = asyncio.Event()
    task = asyncio.create_task(
        _put(
            session,
            service,
            account,
            token,
            data=_trickle(body, seconds, max(10, int(seconds * 4)), streaming),
            headers={"X-Request-ID": f"upload-{doc_id}"},
        )
    )
    return task, streaming


async def until_refused(session, service, account, token, doc_id: str) -> None:
    """Waits until a new request is refused: the service stopped listening."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            await _get_doc(session, service, account, token, doc_id)
        except aiohttp.ClientConnectionError:
            return
        assert time.monotonic() < deadline, "the service kept accepting new requests"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _stored_data(data_dir: Path) -> AsyncIterator[CouchClient]:
    """The embedded server alone on a stopped service's data folder."""
    admin = json.loads((data_dir / "couch-admin.json").read_text())
    options = EmbeddedOptions(
        admin_user=admin["user"], admin_password=admin["password"], data_dir=data_dir / "couch"
    )
    async with EmbeddedCouch(options) as server, CouchClient(server.credentials_url) as client:
        yield client


async def test_killed_embedded_couchdb_is_restarted(tmp_path):
    async with running(tmp_path) as service, aiohttp.ClientSession() as session:
        account, token = await _login(session, service)
        doc_id = new_id()
        status, _ = await _put(session, service, account, token, json={"data": _trunk(doc_id)})
        assert status == 201
        node, couch_url = service.embedded_pid(), service.embedded_url()

        os.kill(node, signal.SIGKILL)
        statuses = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            statuses.append(await _get_doc(session, service, account, token, doc_id))
            if statuses[-1] == 200:
                break
            await asyncio.sleep(0.05)
        # Meanwhile the answer is 503 (datastore_unreachable), never a 500; then it works.
        assert statuses[-1] == 200
        assert set(statuses) <= {200, 503}
        assert service.embedded_pid() != node
        assert service.embedded_url() == couch_url, "same port: embedded-couch.json stays right"
        status, _ = await _put(session, service, account, token, json={"data": _trunk(new_id())})
        assert status == 201
        assert await service.terminate(10) == 0
    records = service.log_records()
    messages = [r["message"] for r in records]
    assert "embedded couchdb exited unexpectedly" in messages
    assert "embedded couchdb restarted" in messages
    # Each request CouchDB failed meanwhile left one JSON line saying what and why.
    faults = [r for r in records if r["message"] == "couchdb unreachable"]
    assert faults and all(r["couch_method"] and r["couch_path"] and r["fault"] for r in faults)
    failed = [r for r in records if r["message"] == "request" and r["status"] == 503]
    assert len(failed) == statuses.count(503)


async def test_embedded_couchdb_that_cannot_come_back_stops_serve_non_zero(tmp_path):
    async with running(tmp_path) as service, aiohttp.ClientSession() as session:
        node = service.embedded_pid()
        port = int(service.embedded_url().rsplit(":", 1)[1])
        # Stopped, the service cannot restart the server before the port is taken: no race.
        os.kill(service.pid, signal.SIGSTOP)
        try:
            os.kill(node, signal.SIGKILL)
            await _until(lambda: not is_running(node), "the embedded server to exit")
            occupied = await _occupy(port)  # someone else took the port: restarts fail
        finally:
            os.kill(service.pid, signal.SIGCONT)
        with occupied:
            async with session.get(f"{service.url}/__heartbeat__") as resp:
                assert resp.status == 503
            code = await service.wait(30)
    assert code == 1
    records = service.log_records()
    assert [r for r in records if r["message"] == "embedded couchdb restart failed"]
    assert [r for r in records if r["level"] == "critical"]


@contextlib.contextmanager
def _listening(sock: socket.socket) -> Iterator[None]:
    try:
        yield
    finally:
        sock.close()


async def _occupy(port: int) -> contextlib.AbstractContextManager[None]:
    """Listens on `port` until the block ends, once the kernel has closed the killed
    server's sockets (nobody else competes for it: the service is stopped)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            sock.bind(("127.0.0.1", port))
            break
        except OSError:
            assert time.monotonic() < deadline, f"port {port} stayed taken"
            await asyncio.sleep(0.01)
    sock.listen()
    return _listening(sock)


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"waited {START_TIMEOUT}s for {what}"
        await asyncio.sleep(0.01)


def _admin_password(data_dir: Path) -> str:
    return json.loads((data_dir / "couch-admin.json").read_text())["password"]
