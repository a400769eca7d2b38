"""KAZOO's tokens both ways (§10.2), checked with the independent code of kazoo_tokens.py.

* A fresh install writes KAZOO's key documents, in KAZOO's shapes, once, even when
  several instances start together.
* On a KAZOO install (its documents planted straight in CouchDB), tokens KAZOO's
  algorithm makes are accepted, and ours are signed with KAZOO's key so that KAZOO
  accepts them; nothing of KAZOO's is rewritten.
* The function the user login calls (`issue_token` with a user) gives a user without a
  signature secret one, as KAZOO does.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator

import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from helpers import call
from instances import instance_for
from kazoo_tokens import (
    account_db_name,
    api_token,
    identity_sig,
    new_rsa_key,
    plant_account,
    plant_auth_config,
    plant_key_doc,
    plant_user,
    rand_hex,
    read_key,
    system_keys,
    user_token,
    verify,
)

from service.auth.tokens import issue_token
from service.couchdb.client import CouchClient
from service.couchdb.embedded import EmbeddedCouch, EmbeddedOptions
from service.http.services import SERVICES
from service.stores.accounts import AccountStore

HEX32 = set("0123456789abcdef")


@pytest_asyncio.fixture
async def fresh_couch() -> AsyncIterator[tuple[str, CouchClient]]:
    """A CouchDB of its own, empty: what a new install, or a KAZOO one, starts from."""
    server = EmbeddedCouch(EmbeddedOptions(admin_password=secrets.token_urlsafe(12)))
    await server.start()
    async with CouchClient(server.credentials_url) as client:
        yield server.credentials_url, client
    await server.stop()


async def system_auth_docs(couch: CouchClient) -> list[dict]:
    rows = (await couch.all_docs("system_auth", include_docs=True))["rows"]
    return [row["doc"] for row in rows if not row["id"].startswith("_design/")]


async def test_fresh_install_writes_kazoos_key_documents(fresh_couch):
    url, couch = fresh_couch
    service = await instance_for(url)
    try:
        created = await AccountStore(couch).create("Fresh", None, None)
        login = await call(
            service, "PUT", "/v2/api_auth", data={"api_key": created.doc["pvt_api_key"]}
        )
        assert login.status == 201
    finally:
        await service.close()
    config = await couch.get_doc("system_config", "auth")
    kid = config["default"]["system_key"]
    secret = config["default"]["secret_for_user_signature"]
    assert len(kid) == 32 and set(kid) <= HEX32
    assert len(secret) == 32 and set(secret) <= HEX32
    assert config["pvt_type"] == "config"
    [key_doc] = await system_auth_docs(couch)
    assert key_doc["_id"] == kid
    assert key_doc["pvt_type"] == "system_key"
    assert key_doc["pvt_account_db"] == key_doc["pvt_account_id"] == "system_auth"
    assert {"pvt_created", "pvt_modified", "pvt_node", "pvt_document_hash"} <= set(key_doc)
    attachment = key_doc["_attachments"]["private_key.pem"]
    assert attachment["content_type"] == "application/x-pem-file"
    stored = await couch.get_doc("system_auth", kid, attachments="true")
    pem = base64.b64decode(stored["_attachments"]["private_key.pem"]["data"])
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")  # PKCS#1, unencrypted
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048 and key.public_key().public_numbers().e == 65537

    # The token: KAZOO's header and claims, byte for byte, signed with that key.
    token = verify(login.body["auth_token"], key.public_key())
    assert token.header_raw == b'{"alg":"RS256","typ":"JWT","kid":"' + kid.encode() + b'"}'
    assert list(token.claims) == ["iss", "identity_sig", "account_id", "method", "exp"]
    assert token.claims["method"] == "cb_api_auth"
    # The account was given its signature secret (both copies), which signs the identity.
    account_id = created.doc["_id"]
    account = await couch.get_doc(account_db_name(account_id), account_id)
    accounts_copy = await couch.get_doc("accounts", account_id)
    assert account["pvt_signature_secret"] == accounts_copy["pvt_signature_secret"]
    assert token.claims["identity_sig"] == identity_sig(
        account["pvt_signature_secret"], secret, account_id
    )


async def test_instances_starting_together_agree_on_one_key(fresh_couch):
    url, couch = fresh_couch
    services = await asyncio.gather(*(instance_for(url) for _ in range(3)))
    try:
        created = await AccountStore(couch).create("Shared", None, None)
        api_key = created.doc["pvt_api_key"]
        logins = await asyncio.gather(
            *(call(s, "PUT", "/v2/api_auth", data={"api_key": api_key}) for s in services)
        )
        keys = await system_keys(couch)
        for login in logins:
            assert verify(login.body["auth_token"], keys.key.public_key()).header["kid"] == keys.kid
            # Each instance accepts what the others issued.
            for service in services:
                reply = await call(
                    service,
                    "GET",
                    f"/v2/accounts/{created.doc['_id']}",
                    token=login.body["auth_token"],
                )
                assert reply.status == 200
    finally:
        for service in services:
            await service.close()
    assert [doc["_id"] for doc in await system_auth_docs(couch)] == [keys.kid]


async def test_a_kazoo_installs_tokens_work_here_and_ours_there(fresh_couch):
    url, couch = fresh_couch
    kid, key, system_secret = rand_hex(), new_rsa_key(), rand_hex()
    await plant_auth_config(couch, kid, system_secret)
    await plant_key_doc(couch, kid, key)
    master = await plant_account(couch, "KAZOO master")
    reseller = await plant_account(couch, "KAZOO reseller", parent=master)
    customer = await plant_account(couch, "KAZOO customer", parent=reseller)
    user = await plant_user(couch, customer["_id"])
    config_rev = (await couch.get_doc("system_config", "auth"))["_rev"]
    service = await instance_for(url)
    try:
        keys = await system_keys(couch)
        assert (keys.kid, keys.system_secret) == (kid, system_secret)
        # A KAZOO user login's token, and a KAZOO api login's token.
        as_user = user_token(keys, customer, user)
        described = await call(service, "GET", "/v2/token_auth", token=as_user)
        assert described.status == 200, described.text
        assert described.data["owner_id"] == user["_id"]
        assert described.data["method"] == "cb_user_auth"
        assert (
            await call(service, "GET", f"/v2/accounts/{customer['_id']}", token=as_user)
        ).status == 200
        reseller_token = api_token(keys, reseller)
        for target, status in ((customer, 200), (reseller, 200), (master, 403)):
            reply = await call(
                service, "GET", f"/v2/accounts/{target['_id']}", token=reseller_token
            )
            assert reply.status == status, reply.text
        # Ours: KAZOO's kid, KAZOO's key, KAZOO's secrets.
        login = await call(
            service, "PUT", "/v2/api_auth", data={"api_key": customer["pvt_api_key"]}
        )
        ours = verify(login.body["auth_token"], key.public_key())
        assert ours.header["kid"] == kid
        assert ours.claims["account_id"] == customer["_id"]
        assert ours.claims["identity_sig"] == identity_sig(
            customer["pvt_signature_secret"], system_secret, customer["_id"]
        )
    finally:
        await service.close()
    # Nothing of KAZOO's was rewritten, and no key was added.
    assert (await couch.get_doc("system_config", "auth"))["_rev"] == config_rev
    assert [doc["_id"] for doc in await system_auth_docs(couch)] == [kid]
    assert (await read_key(couch, kid)).private_numbers() == key.private_numbers()


async def test_any_kazoo_key_doc_is_accepted(api, couch, master):
    """A token signed by another KAZOO key (any kid whose key doc exists)."""
    keys = await system_keys(couch)
    kid, key = rand_hex(), new_rsa_key()
    await plant_key_doc(couch, kid, key)
    account = await couch.get_doc(master.db, master.id)
    other = type(keys)(kid, key, keys.system_secret)
    reply = await call(api, "GET", master.url(), token=api_token(other, account))
    assert reply.status == 200, reply.text


async def test_a_user_login_token_gives_the_user_a_secret(api, couch, customer):
    """What `PUT /v2/user_auth` calls: a user doc with no signature secret gets one."""
    user = await plant_user(couch, customer.id, username="nosecret")
    del user["pvt_signature_secret"]
    saved = await couch.put_doc(customer.db, user)
    user["_rev"] = saved.rev
    account = await couch.get_doc(customer.db, customer.id)
    services = api.app[SERVICES]
    issued = await issue_token(services.keys, account, user=user, method="cb_user_auth")
    stored = await couch.get_doc(customer.db, user["_id"])
    keys = await system_keys(couch)
    claims = verify(issued.token, keys.key.public_key()).claims
    assert list(claims) == ["iss", "identity_sig", "account_id", "owner_id", "method", "exp"]
    assert claims["owner_id"] == user["_id"]
    assert claims["identity_sig"] == identity_sig(
        stored["pvt_signature_secret"], keys.system_secret, user["_id"]
    )
    described = await call(api, "GET", "/v2/token_auth", token=issued.token)
    assert described.data["owner_id"] == user["_id"]
