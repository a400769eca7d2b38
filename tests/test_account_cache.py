"""The account cache never lets a client see an account as it was.

Account docs are served from memory (service/cache/accounts.py). A change must still
take effect on the very next request when it goes through this service, and promptly
when it comes from elsewhere (another instance, the CLI, KAZOO): through the
`accounts` changes feed, or, for a write that skips the `accounts` copy, the TTL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient
from faultproxy import FaultProxy
from helpers import Reply, assert_kazoo_error, call, create_trunk
from instances import instance_for, now, until
from number_helpers import fresh_number, routing_trunk

from service.couchdb.client import CouchClient
from service.http.services import SERVICES
from service.kazoo.ids import account_db
from service.stores.accounts import AccountStore

# Long enough that only the feed (or a cleared cache) can explain a fresh answer.
NEVER_EXPIRES = 3600.0


async def _started(couch_url: str, *, cache_seconds: float) -> TestClient:
    client = await instance_for(couch_url, account_cache_seconds=cache_seconds)
    cache = client.server.app[SERVICES].account_cache
    await until(lambda: now(cache.following), "the changes feed to open")
    return client


@pytest_asyncio.fixture(scope="module")
async def other_api(proxy: FaultProxy) -> AsyncIterator[TestClient]:
    """A second instance whose cache never expires, reaching CouchDB through a proxy."""
    client = await _started(proxy.url, cache_seconds=NEVER_EXPIRES)
    yield client
    await client.close()


async def _elsewhere(couch: CouchClient, account_id: str) -> tuple[AccountStore, dict]:
    """The account as another instance (or the CLI) would change it: not through `api`."""
    store = AccountStore(couch)
    doc = await store.get(account_id)
    assert doc is not None
    return store, doc


async def _trunk_realm(api: TestClient, account) -> str:  # type: ignore[no-untyped-def]
    """The realm a new trunk of `account` is given."""
    return str((await create_trunk(api, account)).data["account"]["auth_realm"])


# -- changes made through this service: the next request sees them --------------------


async def test_deleted_account_answers_404_on_the_next_request(api, make_account):
    parent = await make_account("Parent")
    child = await make_account("Child", parent=parent)
    assert (await call(api, "GET", child.url(), token=child.token)).status == 200
    assert (await call(api, "GET", child.url(), token=parent.token)).status == 200

    deleted = await call(api, "DELETE", f"/v2/accounts/{child.id}", token=parent.token)
    assert deleted.status == 200

    assert_kazoo_error(
        await call(api, "GET", child.url(), token=parent.token), 404, "bad_identifier"
    )
    assert_kazoo_error(
        await call(api, "GET", child.url(), token=child.token), 404, "bad_identifier"
    )


async def test_rotated_key_revokes_tokens_on_the_next_request(api, make_account):
    top = await make_account("Top")
    parent = await make_account("Parent", parent=top)
    child = await make_account("Child", parent=parent)
    # Both as the target account and as the token's account (acting on a child).
    assert (await call(api, "GET", parent.url(), token=parent.token)).status == 200
    assert (await call(api, "GET", child.url(), token=parent.token)).status == 200

    rotated = await call(api, "PUT", f"/v2/accounts/{parent.id}/api_key", token=top.token)
    assert rotated.status == 200

    for url in (parent.url(), child.url()):
        reply = await call(api, "GET", url, token=parent.token)
        assert_kazoo_error(reply, 401, "invalid_credentials")
    login = await call(api, "PUT", "/v2/api_auth", data={"api_key": rotated.data["api_key"]})
    new_token = login.body["auth_token"]
    assert (await call(api, "GET", child.url(), token=new_token)).status == 200


async def test_realm_change_reaches_the_next_connectivity_write(api, make_account):
    parent = await make_account("Parent")
    child = await make_account("Child", parent=parent)
    assert await _trunk_realm(api, child) == child.realm

    new_realm = f"moved-{child.id[:8]}.sip.example"
    patched = await call(
        api, "PATCH", f"/v2/accounts/{child.id}", data={"realm": new_realm}, token=parent.token
    )
    assert patched.status == 200, patched.text

    assert await _trunk_realm(api, child) == new_realm


# -- changes made elsewhere: the changes feed brings them ------------------------------


async def test_key_rotated_elsewhere_revokes_tokens_promptly(other_api, couch, make_account):
    account = await make_account("Rotated elsewhere")
    assert (await call(other_api, "GET", account.url(), token=account.token)).status == 200

    store, doc = await _elsewhere(couch, account.id)
    await store.rotate_api_key(doc)

    async def refused() -> bool:
        reply = await call(other_api, "GET", account.url(), token=account.token)
        return reply.status == 401

    await until(refused, "the old token to be refused")


async def test_account_deleted_elsewhere_answers_404_promptly(other_api, couch, make_account):
    parent = await make_account("Parent")
    child = await make_account("Deleted elsewhere", parent=parent)
    assert (await call(other_api, "GET", child.url(), token=parent.token)).status == 200

    store, doc = await _elsewhere(couch, child.id)
    await store.soft_delete(doc)

    async def gone() -> bool:
        reply = await call(other_api, "GET", child.url(), token=parent.token)
        return reply.status == 404

    await until(gone, "the deleted account to answer 404")


async def test_realm_changed_elsewhere_reaches_connectivity_promptly(
    other_api, couch, make_account
):
    account = await make_account("Realm elsewhere")
    assert await _trunk_realm(other_api, account) == account.realm

    store, doc = await _elsewhere(couch, account.id)
    new_realm = f"elsewhere-{account.id[:8]}.sip.example"
    previous = doc["realm"]
    doc["realm"] = new_realm
    await store.save(doc, previous_realm=previous)

    async def moved() -> bool:
        return await _trunk_realm(other_api, account) == new_realm

    await until(moved, "new trunks to carry the new realm")


async def test_change_made_while_the_feed_was_down_is_not_served_stale(
    other_api, proxy, couch, make_account
):
    account = await make_account("Changed during an outage")
    assert (await call(other_api, "GET", account.url(), token=account.token)).status == 200
    cache = other_api.server.app[SERVICES].account_cache

    await proxy.go_down()
    try:
        await until(lambda: now(not cache.following), "the feed to notice the outage")
        # The change happens while the feed cannot report it, and is never replayed.
        store, doc = await _elsewhere(couch, account.id)
        await store.rotate_api_key(doc)
    finally:
        await proxy.come_up()

    answers: list[Reply] = []

    async def answered() -> bool:
        answers.append(await call(other_api, "GET", account.url(), token=account.token))
        return answers[-1].status != 503  # 503 while CouchDB is still coming back

    await until(answered, "CouchDB to answer again")
    assert_kazoo_error(answers[-1], 401, "invalid_credentials")


# -- a write that skips the `accounts` copy: the TTL is the safety net -------------------


async def test_write_only_to_the_account_db_is_seen_by_the_next_trunk_write(
    other_api, couch, make_account
):
    """A trunk write's DID check reads the account database's changes, the account's
    own doc among them: a change the `accounts` feed never hears of reaches the cache
    there, however long its TTL."""
    account = await make_account("Seen by a write")
    await create_trunk(other_api, account, routing_trunk([fresh_number()]))
    assert (await call(other_api, "GET", account.url(), token=account.token)).status == 200

    doc = await couch.get_doc(account_db(account.id), account.id)
    doc["pvt_deleted"] = True
    await couch.put_doc(account_db(account.id), doc)
    # Answered from the cache (the change is not known yet); its check reads it.
    await call(
        other_api, "PUT", account.url(), data=routing_trunk([fresh_number()]), token=account.token
    )

    assert_kazoo_error(
        await call(other_api, "GET", account.url(), token=account.token), 404, "bad_identifier"
    )


async def test_write_only_to_the_account_db_expires_with_the_ttl(couch_url, couch, make_account):
    short = await _started(couch_url, cache_seconds=0.3)
    try:
        account = await make_account("Skips the copy")
        assert (await call(short, "GET", account.url(), token=account.token)).status == 200

        # Only the authoritative doc: the `accounts` feed never hears of this change.
        doc = await couch.get_doc(account_db(account.id), account.id)
        doc["pvt_deleted"] = True
        await couch.put_doc(account_db(account.id), doc)

        async def gone() -> bool:
            reply = await call(short, "GET", account.url(), token=account.token)
            return reply.status == 404

        await until(gone, "the TTL to drop the stale account")
    finally:
        await short.close()
