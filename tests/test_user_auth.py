"""`PUT /v2/user_auth`: a user logs in as Monster UI logs in (cb_user_auth)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

import pytest_asyncio
from helpers import assert_kazoo_error, call
from instances import instance_for
from number_helpers import fresh_number

from service.kazoo.ids import GREGORIAN_OFFSET, now_gregorian
from service.kazoo.users import login_credentials

Json = dict


def md5_creds(username: str, password: str) -> str:
    # What Monster UI computes in the browser (auth/app.js).
    return hashlib.md5(f"{username.lower()}:{password}".encode()).hexdigest()


async def add_user(api, account, *, password: str = "correct horse", **fields) -> Json:
    username = fields.pop("username", f"admin.{secrets.token_hex(3)}")
    body = {
        "first_name": "Grace",
        "last_name": "Hopper",
        "username": username,
        "password": password,
        "priv_level": "admin",
        **fields,
    }
    url = f"/v2/accounts/{account.id}/users"
    reply = await call(api, "PUT", url, data=body, token=account.token)
    assert reply.status == 201, reply.text
    return reply.data


@pytest_asyncio.fixture(scope="module")
async def logins(couch_url):
    """An instance of its own for the logins: the failures here must not use up the
    shared instance's failure limiter, which other modules' logins draw on."""
    instance = await instance_for(couch_url, auth_failure_burst=10_000)
    yield instance
    await instance.close()


async def login(api, **data):
    return await call(api, "PUT", "/v2/user_auth", data=data)


def claims_of(token: str) -> Json:
    middle = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(middle + "=" * (-len(middle) % 4)))


async def test_login_by_account_name_answers_what_monster_ui_reads(api, make_account, logins):
    account = await make_account(f"Acme Corp {secrets.token_hex(3)}")
    user = await add_user(api, account, language="fr-FR")
    reply = await login(
        logins,
        credentials=md5_creds(user["username"], "correct horse"),
        # Typed as the user likes: KAZOO compares names lower-cased, letters and digits only.
        account_name=account.name.upper().replace(" ", "-"),
        ui_metadata={"version": "4.3.0", "ui": "monster-ui", "origin": "auth"},
    )
    assert reply.status == 201, reply.text
    assert reply.headers["Content-Type"] == "application/json"
    token = reply.body["auth_token"]
    assert token.count(".") == 2  # Monster UI splits it as a JWT
    data = reply.data
    assert data["account_id"] == account.id
    assert data["owner_id"] == user["id"]
    assert data["language"] == "fr-FR"
    assert data["is_reseller"] is True  # a top-level account
    assert data["reseller_id"] == account.id
    assert data["account_name"] == account.name
    assert [app["name"] for app in data["apps"]] == ["pbxs"]
    claims = claims_of(token)
    assert claims["owner_id"] == user["id"]
    assert claims["method"] == "cb_user_auth"
    # The token works like any other, and knows its user.
    me = await call(api, "GET", f"/v2/accounts/{account.id}/users/{user['id']}", token=token)
    assert me.status == 200, me.text
    info = await call(api, "GET", "/v2/token_auth", token=token)
    assert info.data["owner_id"] == user["id"]
    assert info.data["method"] == "cb_user_auth"


async def test_login_by_realm_with_sha1_and_by_phone_number(api, make_account, master, logins):
    account = await make_account("Realm Co", parent=master)
    user = await add_user(api, account, password="pw-sha")
    sha = hashlib.sha1(f"{user['username']}:pw-sha".encode()).hexdigest()
    by_realm = await login(logins, credentials=sha, method="sha", account_realm=account.realm)
    assert by_realm.status == 201, by_realm.text
    assert by_realm.data["owner_id"] == user["id"]
    assert by_realm.data["is_reseller"] is False

    # A ten-digit NANP number (exchange 2-9), so that its national form normalises back.
    number = fresh_number()
    created = await call(
        api,
        "PUT",
        f"/v2/accounts/{account.id}/phone_numbers/{number.replace('+', '%2B')}",
        data={},
        token=master.token,
    )
    assert created.status == 201, created.text
    by_number = await login(
        logins, credentials=md5_creds(user["username"], "pw-sha"), phone_number=number[2:]
    )
    assert by_number.status == 201, by_number.text
    assert by_number.data["account_id"] == account.id


async def test_wrong_credentials_are_a_json_401(api, make_account, logins):
    account = await make_account(f"Wrong Pass {secrets.token_hex(3)}")
    user = await add_user(api, account)
    attempts = [
        {"credentials": md5_creds(user["username"], "wrong"), "account_name": account.name},
        {"credentials": md5_creds("nobody", "correct horse"), "account_name": account.name},
        {"credentials": md5_creds(user["username"], "correct horse"), "account_name": "nope"},
        {"credentials": md5_creds(user["username"], "correct horse")},
    ]
    for attempt in attempts:
        reply = await login(logins, **attempt)
        data = assert_kazoo_error(reply, 401, "invalid_credentials")
        # Monster UI parses the body only when the type is exactly this (kazoosdk.js).
        assert reply.headers["Content-Type"] == "application/json"
        assert isinstance(data, dict)
        assert "auth_token" not in reply.body


async def test_a_disabled_or_expired_account_is_423(api, couch, make_account, master, logins):
    account = await make_account(f"Locked {secrets.token_hex(3)}", parent=master)
    user = await add_user(api, account)
    creds = md5_creds(user["username"], "correct horse")
    doc = await couch.get_doc(account.db, account.id)
    doc["pvt_trial_expires"] = now_gregorian() - 60
    await couch.put_doc(account.db, doc)
    expired = await login(logins, credentials=creds, account_realm=account.realm)
    data = assert_kazoo_error(expired, 423, "account expired")
    assert "expired" in data["account"]

    disabled = await call(
        api,
        "PATCH",
        f"/v2/accounts/{account.id}",
        data={"enabled": False},
        token=master.token,
    )
    assert disabled.status == 200, disabled.text
    doc = await couch.get_doc(account.db, account.id)
    doc.pop("pvt_trial_expires")
    await couch.put_doc(account.db, doc)
    reply = await login(logins, credentials=creds, account_realm=account.realm)
    data = assert_kazoo_error(reply, 423, "account disabled")
    assert data == {"account": {"disabled": {"message": "account disabled"}}}
    # Wrong credentials on a locked account say nothing about the account.
    wrong = await login(logins, credentials=md5_creds("x", "y"), account_realm=account.realm)
    assert_kazoo_error(wrong, 401, "invalid_credentials")


async def test_a_disabled_or_deleted_user_cannot_log_in(api, make_account, logins):
    account = await make_account(f"Users Off {secrets.token_hex(3)}")
    off = await add_user(api, account, enabled=False)
    gone = await add_user(api, account)
    url = f"/v2/accounts/{account.id}/users/{gone['id']}"
    assert (await call(api, "DELETE", url, token=account.token)).status == 200
    for user in (off, gone):
        reply = await login(
            logins,
            credentials=md5_creds(user["username"], "correct horse"),
            account_name=account.name,
        )
        assert_kazoo_error(reply, 401, "invalid_credentials")


async def test_a_user_kazoo_wrote_logs_in_and_kazoos_design_doc_is_left_alone(
    api, couch, make_account, logins
):
    account = await make_account(f"From Kazoo {secrets.token_hex(3)}")
    # KAZOO's own `_design/users` (whatever its content) must survive our lookups.
    kazoo_ddoc = {"_id": "_design/users", "language": "javascript", "views": {}}
    await couch.put_doc(account.db, kazoo_ddoc)
    ours = await couch.get_doc(account.db, "_design/connectivity_users")
    await couch.delete_doc(account.db, ours["_id"], ours["_rev"])
    md5, sha1 = (
        hashlib.md5(b"ops:kazoo-pw").hexdigest(),
        hashlib.sha1(b"ops:kazoo-pw").hexdigest(),
    )
    user_id = secrets.token_hex(16)
    await couch.put_doc(
        account.db,
        {
            "_id": user_id,
            "pvt_type": "user",
            "username": "ops",
            "first_name": "Ops",
            "last_name": "Team",
            "enabled": True,
            "priv_level": "admin",
            "pvt_md5_auth": md5,
            "pvt_sha1_auth": sha1,
            "pvt_account_id": account.id,
            "pvt_account_db": account.db.replace("/", "%2F"),
            "pvt_created": GREGORIAN_OFFSET,
        },
    )
    reply = await login(logins, credentials=md5, account_name=account.name)
    assert reply.status == 201, reply.text
    assert reply.data["owner_id"] == user_id
    stored = await couch.get_doc(account.db, "_design/users")
    assert {k: v for k, v in stored.items() if k != "_rev"} == kazoo_ddoc


async def test_a_bad_body_is_400_and_never_echoes_the_credentials(api, logins):
    for data in ({}, {"credentials": 42}, {"credentials": "ab", "method": "crc32"}):
        reply = await login(logins, **data)
        assert_kazoo_error(reply, 400, "validation error")
    too_long = "f00d" * 20
    reply = await login(logins, credentials=too_long, account_name="x")
    data = assert_kazoo_error(reply, 400, "validation error")
    assert "maxLength" in data["credentials"]
    assert too_long not in reply.text


async def test_failed_logins_share_the_api_auth_limiter(couch_url, make_account, api):
    account = await make_account(f"Limited {secrets.token_hex(3)}")
    user = await add_user(api, account)
    instance = await instance_for(couch_url, auth_failure_burst=2, auth_failure_refill_per_second=0)
    try:
        good = login_credentials(user["username"], "correct horse")
        bad = {"credentials": md5_creds(user["username"], "nope"), "account_name": account.name}
        assert (await login(instance, **bad)).status == 401
        # The other login door draws on the same bucket.
        api_key = await call(instance, "PUT", "/v2/api_auth", data={"api_key": "0" * 64})
        assert api_key.status == 404
        for data in (bad, {"credentials": good, "account_name": account.name}):
            assert_kazoo_error(await login(instance, **data), 429, "too_many_requests")
    finally:
        await instance.close()
    # Another instance (its own limiter) lets the right password in at once.
    ok = await login(api, credentials=good, account_name=account.name)
    assert ok.status == 201, ok.text
