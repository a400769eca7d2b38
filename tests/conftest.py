"""Fixtures that chain: embedded CouchDB → service → accounts → tokens.

Everything runs against a real CouchDB-compatible server the suite starts itself (the
embedded one, in memory), or Apache CouchDB when CONNECTIVITY_TEST_COUCH_URL is set.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from faultproxy import FaultProxy
from instances import instance_for, proxied_instance

from service.couchdb.client import CouchClient
from service.couchdb.embedded import EmbeddedCouch, EmbeddedOptions
from service.couchdb.runtime import with_credentials
from service.stores.accounts import AccountStore

Json = dict[str, Any]

APACHE_COUCH_URL = os.environ.get("CONNECTIVITY_TEST_COUCH_URL")
requires_apache_couch = pytest.mark.skipif(
    not APACHE_COUCH_URL, reason="set CONNECTIVITY_TEST_COUCH_URL to an Apache CouchDB 3.x"
)


@pytest_asyncio.fixture(scope="session")
async def couch_url() -> AsyncIterator[str]:
    """The CouchDB URL (with admin credentials) every test of the session uses."""
    if APACHE_COUCH_URL:
        await _forget_earlier_runs_instances(APACHE_COUCH_URL)
        yield APACHE_COUCH_URL
        return
    password = secrets.token_urlsafe(16)
    server = EmbeddedCouch(EmbeddedOptions(admin_password=password))
    url = await server.start()
    yield with_credentials(url, "admin", password)
    await server.stop()


async def _forget_earlier_runs_instances(url: str) -> None:
    """An Apache CouchDB outlives the run: instances of an earlier run that was killed
    left their roster entries, which would hold this run's first writes back until their
    lease ends (numbers/instances.py)."""
    from service.couchdb.client import DatabaseNotFound, DocumentNotFound
    from service.numbers.did_claims import CLAIMS_DB
    from service.numbers.instances import ROSTER_ID

    async with CouchClient(url) as client:
        try:
            roster = await client.get_doc(CLAIMS_DB, ROSTER_ID)
        except (DocumentNotFound, DatabaseNotFound):
            return
        await client.delete_doc(CLAIMS_DB, ROSTER_ID, roster["_rev"])


@pytest_asyncio.fixture(scope="session")
async def couch(couch_url: str) -> AsyncIterator[CouchClient]:
    """A raw CouchDB client, to look at what the service stored."""
    async with CouchClient(couch_url) as client:
        yield client


@pytest_asyncio.fixture(scope="session", autouse=True)
async def log_audit(couch_url: str) -> AsyncIterator[None]:
    """Issue #7: no log line of the whole session holds a secret the suite used."""
    from log_audit import LogAudit, secrets_used

    audit = LogAudit().install()
    yield
    audit.uninstall()
    leaks = audit.leaks(await secrets_used(couch_url))
    assert not leaks, f"{len(leaks)} log lines with secrets:\n" + "\n".join(leaks[:20])


@pytest_asyncio.fixture(scope="session")
async def api(couch_url: str) -> AsyncIterator[TestClient]:
    """The service under test, over HTTP, shared by the whole session.

    Its read cache and DID index are off: they follow at most
    CONNECTIVITY_READ_CACHE_DATABASES / CONNECTIVITY_DID_INDEX_DATABASES databases, so a
    shared instance with them would answer early tests from memory and late ones from
    CouchDB. Every read and duplicate-DID check of `api` reaches CouchDB; tests of the
    caches use an instance of their own (`cached_api`, `proxied_api`).

    It claims no numbers in CouchDB and has no entry in the instance roster
    (CONNECTIVITY_DID_CLAIMS=false): alive all session long, it would otherwise keep
    every other instance from ever working alone (tests/test_instances.py).
    """
    client = await instance_for(couch_url, read_cache_mb=0, did_index_databases=0, did_claims=False)
    yield client
    await client.close()


@pytest_asyncio.fixture(scope="module")
async def cached_api(couch_url: str) -> AsyncIterator[TestClient]:
    """An instance whose read cache follows every database a module's tests touch."""
    client = await instance_for(couch_url, read_cache_databases=10_000, did_claims=False)
    yield client
    await client.close()


@dataclass
class Account:
    id: str
    name: str
    realm: str
    api_key: str
    doc: Json
    token: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> str:
        from service.kazoo.ids import account_db

        return account_db(self.id)

    def url(self, suffix: str = "") -> str:
        return f"/v2/accounts/{self.id}/connectivity{suffix}"


AccountFactory = Any


@pytest_asyncio.fixture(scope="session")
async def make_account(couch: CouchClient, api: TestClient) -> AccountFactory:
    """Creates an account (as `create-account` does) and logs it in via api_auth."""

    async def make(
        name: str = "Test", *, parent: Account | None = None, realm: str | None = None
    ) -> Account:
        store = AccountStore(couch)
        await store.ensure_system_databases()
        created = await store.create(name, realm, parent.id if parent else None)
        summary = created.summary
        account = Account(
            id=summary["account_id"],
            name=name,
            realm=summary["realm"],
            api_key=summary["api_key"],
            doc=created.doc,
        )
        resp = await api.put("/v2/api_auth", json={"data": {"api_key": account.api_key}})
        assert resp.status == 201, await resp.text()
        account.token = (await resp.json())["auth_token"]
        account.headers = {"X-Auth-Token": account.token}
        return account

    return make


@pytest_asyncio.fixture
async def master(make_account: AccountFactory) -> Account:
    """A top-level (superduper) account."""
    return await make_account("Master")


@pytest_asyncio.fixture
async def reseller(make_account: AccountFactory, master: Account) -> Account:
    return await make_account("Reseller", parent=master)


@pytest_asyncio.fixture
async def customer(make_account: AccountFactory, reseller: Account) -> Account:
    return await make_account("Customer", parent=reseller)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The security suite's closing figure."""
    try:
        from test_security import SECURITY_FIGURES
    except ImportError:
        return
    if SECURITY_FIGURES["attempts"]:
        terminalreporter.write_line(
            "security suite: {attempts} access attempts, {wrongly_allowed} wrongly allowed, "
            "{wrongly_denied} wrongly denied".format(**SECURITY_FIGURES)
        )
    from reliability import summary_line  # the reliability figures

    line = summary_line()
    if line:
        terminalreporter.write_line(line)


@pytest_asyncio.fixture(scope="module")
async def proxy(couch_url: str) -> AsyncIterator[FaultProxy]:
    """A FaultProxy in front of the suite's CouchDB, one per test module: a test that
    takes it down brings it back, and counts requests from where it starts."""
    proxy = await FaultProxy(couch_url).start()
    yield proxy
    await proxy.stop()


@pytest_asyncio.fixture
async def proxied_api(proxy: FaultProxy) -> AsyncIterator[TestClient]:
    """A service instance of its own that reaches CouchDB through `proxy`."""
    client = await proxied_instance(proxy)
    yield client
    await client.close()
