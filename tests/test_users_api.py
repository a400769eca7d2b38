"""`/v2/accounts/{A}/users`: users stored as KAZOO stores them, passwords never in clear."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from helpers import assert_kazoo_error, call

from service.http.services import SERVICES

Json = dict


def users_url(account_id: str, user_id: str = "") -> str:
    return f"/v2/accounts/{account_id}/users" + (f"/{user_id}" if user_id else "")


def new_username(label: str = "user") -> str:
    # Usernames are unique per account; a persistent Apache CouchDB keeps earlier runs'.
    return f"{label}.{secrets.token_hex(3)}@Example.COM"


async def create_user(api, account, **fields) -> Json:
    body = {"first_name": "Ada", "last_name": "Lovelace", **fields}
    reply = await call(api, "PUT", users_url(account.id), data=body, token=account.token)
    assert reply.status == 201, reply.text
    return reply.data


async def test_user_is_stored_as_kazoo_stores_it(api, couch, customer):
    username = new_username()
    created = await create_user(api, customer, username=username, password="pa55-word")
    stored = await couch.get_doc(customer.db, created["id"])
    lowered = username.lower()
    assert stored["pvt_type"] == "user"
    assert stored["username"] == lowered
    assert stored["pvt_md5_auth"] == hashlib.md5(f"{lowered}:pa55-word".encode()).hexdigest()
    assert stored["pvt_sha1_auth"] == hashlib.sha1(f"{lowered}:pa55-word".encode()).hexdigest()
    assert stored["pvt_account_id"] == customer.id
    assert stored["pvt_account_db"] == customer.db.replace("/", "%2F")
    # The schema's defaults, as KAZOO's own `creds_by_md5` view needs `enabled`.
    assert stored["enabled"] is True
    assert stored["priv_level"] == "user"
    assert "password" not in stored
    assert "pa55-word" not in str(stored)


async def test_answers_never_hold_the_password_or_its_hashes(api, couch, customer):
    created = await create_user(api, customer, username=new_username(), password="s3cr3t-pw")
    stored = await couch.get_doc(customer.db, created["id"])
    replies = [
        await call(api, "GET", users_url(customer.id, created["id"]), token=customer.token),
        await call(api, "GET", users_url(customer.id), token=customer.token),
    ]
    for reply in replies:
        assert reply.status == 200, reply.text
        for secret in ("s3cr3t-pw", stored["pvt_md5_auth"], stored["pvt_sha1_auth"]):
            assert secret not in reply.text
    assert "password" not in created


async def test_get_patch_post_delete_a_user(api, couch, customer):
    created = await create_user(api, customer, username=new_username(), password="pw-1")
    url = users_url(customer.id, created["id"])
    got = await call(api, "GET", url, token=customer.token)
    assert got.status == 200
    assert got.headers["ETag"] == f'"{got.body["revision"]}"'
    assert got.data["first_name"] == "Ada"

    patched = await call(api, "PATCH", url, data={"appList": ["app1"]}, token=customer.token)
    assert patched.status == 200, patched.text
    assert patched.data["appList"] == ["app1"]
    assert patched.data["first_name"] == "Ada"

    whole = {**patched.data, "last_name": "Byron", "ui_metadata": {"ui": "monster-ui"}}
    posted = await call(api, "POST", url, data=whole, token=customer.token)
    assert posted.status == 200, posted.text
    assert posted.data["last_name"] == "Byron"
    assert posted.data["ui_metadata"] == {"ui": "monster-ui"}
    stored = await couch.get_doc(customer.db, created["id"])
    # A POST without a password keeps the stored hashes (they are private fields).
    assert stored["pvt_md5_auth"]

    deleted = await call(api, "DELETE", url, body={"data": {}}, token=customer.token)
    assert deleted.status == 200, deleted.text
    assert deleted.data["_read_only"] == {"deleted": True}
    assert (await couch.get_doc(customer.db, created["id"]))["pvt_deleted"] is True
    gone = await call(api, "GET", url, token=customer.token)
    assert_kazoo_error(gone, 404, "bad_identifier")


async def test_users_are_listed_with_their_summary(api, customer):
    first = await create_user(api, customer, username=new_username("list"), priv_level="admin")
    reply = await call(api, "GET", users_url(customer.id), token=customer.token)
    assert reply.status == 200, reply.text
    row = next(row for row in reply.data if row["id"] == first["id"])
    assert row["priv_level"] == "admin"
    assert row["username"] == first["username"]


async def test_a_username_is_unique_in_its_account(api, customer):
    username = new_username("twice")
    await create_user(api, customer, username=username)
    body = {"first_name": "B", "last_name": "C", "username": username.upper()}
    reply = await call(api, "PUT", users_url(customer.id), data=body, token=customer.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert "unique" in data["username"]


async def test_a_new_password_rehashes_and_a_rename_needs_one(api, couch, customer):
    username = new_username("rename")
    created = await create_user(api, customer, username=username, password="old-pw")
    url = users_url(customer.id, created["id"])
    before = await couch.get_doc(customer.db, created["id"])
    reply = await call(api, "PATCH", url, data={"password": "new-pw"}, token=customer.token)
    assert reply.status == 200, reply.text
    after = await couch.get_doc(customer.db, created["id"])
    lowered = username.lower()
    assert after["pvt_md5_auth"] == hashlib.md5(f"{lowered}:new-pw".encode()).hexdigest()
    # KAZOO resets the identity secret with the password: older tokens of the user stop.
    assert after["pvt_signature_secret"] != before.get("pvt_signature_secret")
    rename = await call(api, "PATCH", url, data={"username": "other"}, token=customer.token)
    data = assert_kazoo_error(rename, 400, "validation error")
    assert "required" in data["password"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"last_name": "No First"}, "first_name"),
        ({"first_name": "A", "last_name": "B", "priv_level": "root"}, "priv_level"),
        ({"first_name": "A", "last_name": "B", "username": "has space"}, "username"),
        ({"first_name": "A", "last_name": "B", "enabled": "maybe"}, "enabled"),
    ],
)
async def test_a_bad_user_is_a_400_naming_the_field(api, customer, body, field):
    reply = await call(api, "PUT", users_url(customer.id), data=body, token=customer.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert field in data


async def test_a_siblings_users_are_forbidden(api, make_account, reseller, customer):
    stranger = await make_account("Sibling", parent=reseller)
    reply = await call(api, "GET", users_url(customer.id), token=stranger.token)
    assert_kazoo_error(reply, 403, "forbidden")
    reply = await call(api, "GET", users_url(customer.id))
    assert_kazoo_error(reply, 401, "invalid_credentials")


async def test_an_unknown_or_non_user_id_is_404(api, customer):
    for user_id in ("0" * 32, "_design%2Fconnectivity_users", customer.id):
        reply = await call(api, "GET", users_url(customer.id, user_id), token=customer.token)
        assert_kazoo_error(reply, 404, "bad_identifier")


async def test_every_save_and_delete_reaches_the_change_hook(api, customer):
    seen: list[tuple[str, str, bool, bool]] = []
    store = api.server.app[SERVICES].users
    store.on_change = lambda account_id, doc, created: seen.append(
        (account_id, doc["_id"], created, bool(doc.get("pvt_deleted")))
    )
    try:
        created = await create_user(api, customer, username=new_username("hook"))
        url = users_url(customer.id, created["id"])
        await call(api, "PATCH", url, data={"language": "fr-FR"}, token=customer.token)
        await call(api, "DELETE", url, token=customer.token)
    finally:
        store.on_change = None
    assert seen == [
        (customer.id, created["id"], True, False),
        (customer.id, created["id"], False, False),
        (customer.id, created["id"], False, True),
    ]


async def test_a_refused_password_is_not_echoed(api, customer):
    body = {"first_name": "A", "last_name": "B", "username": new_username(), "password": 81726354}
    reply = await call(api, "PUT", users_url(customer.id), data=body, token=customer.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert "type" in data["password"]
    assert "81726354" not in reply.text
