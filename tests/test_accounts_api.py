"""The accounts resource: a reseller's tree, KAZOO-shaped."""

from __future__ import annotations

from helpers import assert_kazoo_error, call, unique_realm

from service.kazoo.ids import ACCOUNTS_DB, account_db


async def test_put_creates_a_child_account_as_kazoo_stores_it(api, couch, master):
    spaced = unique_realm("child co")
    reply = await call(
        api,
        "PUT",
        f"/v2/accounts/{master.id}",
        data={"name": "Child Co", "realm": spaced, "timezone": "Europe/Paris"},
        token=master.token,
    )
    assert reply.status == 201, reply.text
    child = reply.data
    assert reply.headers["Location"] == f"/v2/accounts/{child['id']}"
    assert child["name"] == "Child Co"
    assert child["realm"] == spaced.replace(" ", "")  # KAZOO strips spaces
    assert child["timezone"] == "Europe/Paris"
    assert child["reseller_id"] == master.id
    assert child["superduper_admin"] is False
    assert "api_key" not in child and "pvt_api_key" not in child
    stored = await couch.get_doc(account_db(child["id"]), child["id"])
    assert stored["pvt_type"] == "account"
    assert stored["pvt_tree"] == [master.id]
    assert len(stored["pvt_api_key"]) == 64
    copy = await couch.get_doc(ACCOUNTS_DB, child["id"])
    assert copy["pvt_tree"] == [master.id]
    assert copy["realm"] == child["realm"]
    security = (
        await couch.request("GET", f"{account_db(child['id']).replace('/', '%2F')}/_security")
    )[1]
    assert security["members"]["roles"] == ["_admin"]
    ddoc = await couch.get_doc(account_db(child["id"]), "_design/trunkstore")
    assert "crossbar_listing" in ddoc["views"]
    grandchild = await call(
        api, "PUT", f"/v2/accounts/{child['id']}", data={"name": "Grandchild"}, token=master.token
    )
    stored = await couch.get_doc(account_db(grandchild.data["id"]), grandchild.data["id"])
    assert stored["pvt_tree"] == [master.id, child["id"]]


async def test_account_validation_and_unique_realm(api, master, make_account):
    taken = await make_account("Holder", realm=unique_realm("taken"))
    missing = await call(api, "PUT", f"/v2/accounts/{master.id}", data={}, token=master.token)
    data = assert_kazoo_error(missing, 400, "validation error")
    assert data["name"]["required"]["value"] == "name"
    dup = await call(
        api,
        "PUT",
        f"/v2/accounts/{master.id}",
        data={"name": "Dup", "realm": taken.realm.upper()},
        token=master.token,
    )
    data = assert_kazoo_error(dup, 400, "validation error")
    assert data["realm"]["unique"]["message"] == "Account realm already in use"
    post = await call(
        api,
        "POST",
        f"/v2/accounts/{master.id}",
        data={"name": "Master", "realm": taken.realm},
        token=master.token,
    )
    assert_kazoo_error(post, 400, "validation error")


async def test_post_patch_and_realm_change_reach_connectivity(api, make_account):
    parent = await make_account("Parent")
    child = await make_account("Child", parent=parent)
    moved = unique_realm("moved")
    patched = await call(
        api,
        "PATCH",
        f"/v2/accounts/{child.id}",
        data={"realm": moved, "language": "fr-fr"},
        token=parent.token,
    )
    assert patched.status == 200, patched.text
    assert patched.data["realm"] == moved
    assert patched.data["name"] == "Child"
    trunk = await call(api, "PUT", child.url(), data={"name": "t"}, token=child.token)
    assert trunk.data["account"]["auth_realm"] == moved
    # The old realm is free again; the new one is taken.
    reuse = await call(
        api,
        "PUT",
        f"/v2/accounts/{parent.id}",
        data={"name": "Reuse", "realm": child.realm},
        token=parent.token,
    )
    assert reuse.status == 201
    posted = await call(
        api, "POST", f"/v2/accounts/{child.id}", data={"name": "Renamed"}, token=parent.token
    )
    assert posted.data["name"] == "Renamed"
    assert "language" not in posted.data
    assert posted.data["realm"] == moved


async def test_delete_account(api, couch, make_account):
    parent = await make_account("Parent")
    child = await make_account("Child", parent=parent)
    grandchild = await make_account("Grandchild", parent=child)
    blocked = await call(api, "DELETE", f"/v2/accounts/{child.id}", token=parent.token)
    assert_kazoo_error(blocked, 400, "account_has_descendants")
    gone = await call(api, "DELETE", f"/v2/accounts/{grandchild.id}", token=parent.token)
    assert gone.status == 200
    assert gone.data["_read_only"] == {"deleted": True}
    stored = await couch.get_doc(account_db(grandchild.id), grandchild.id)
    assert stored["pvt_deleted"] is True
    for path in (f"/v2/accounts/{grandchild.id}", grandchild.url()):
        reply = await call(api, "GET", path, token=parent.token)
        assert_kazoo_error(reply, 404, "bad_identifier")
    # Its own token stops working everywhere, and its key no longer logs in.
    own = await call(api, "GET", "/v2/token_auth", token=grandchild.token)
    assert_kazoo_error(own, 401, "invalid_credentials")
    login = await call(api, "PUT", "/v2/api_auth", data={"api_key": grandchild.api_key})
    assert_kazoo_error(login, 404, "bad_identifier")
    now_leaf = await call(api, "DELETE", f"/v2/accounts/{child.id}", token=parent.token)
    assert now_leaf.status == 200


async def test_master_account_cannot_be_deleted(api, master):
    reply = await call(api, "DELETE", f"/v2/accounts/{master.id}", token=master.token)
    assert_kazoo_error(reply, 405, "invalid_method")


async def test_children_and_descendants_with_paging(api, make_account):
    top = await make_account("Top")
    kids = [await make_account(f"Kid {i}", parent=top) for i in range(3)]
    grandkid = await make_account("Grandkid", parent=kids[0])
    children = await call(api, "GET", f"/v2/accounts/{top.id}/children", token=top.token)
    assert sorted(children.data) == sorted(kid.id for kid in kids)
    descendants = await call(api, "GET", f"/v2/accounts/{top.id}/descendants", token=top.token)
    assert sorted(descendants.data) == sorted([*(kid.id for kid in kids), grandkid.id])
    first = await call(
        api,
        "GET",
        f"/v2/accounts/{top.id}/descendants",
        token=top.token,
        params={"page_size": "2", "ascending": "true"},
    )
    assert first.data == sorted(descendants.data)[:2]
    rest = await call(
        api,
        "GET",
        f"/v2/accounts/{top.id}/descendants",
        token=top.token,
        params={"page_size": "2", "ascending": "true", "start_key": first.body["next_start_key"]},
    )
    assert rest.data == sorted(descendants.data)[2:]
    assert "next_start_key" not in rest.body
    kid_children = await call(api, "GET", f"/v2/accounts/{kids[1].id}/children", token=top.token)
    assert kid_children.data == []


async def test_api_key_read_and_rotation(api, make_account):
    parent = await make_account("Parent")
    child = await make_account("Child", parent=parent)
    read = await call(api, "GET", f"/v2/accounts/{child.id}/api_key", token=parent.token)
    assert read.data == {"api_key": child.api_key}
    rotated = await call(api, "PUT", f"/v2/accounts/{child.id}/api_key", token=parent.token)
    new_key = rotated.data["api_key"]
    assert len(new_key) == 64 and new_key != child.api_key
    old_token = await call(api, "GET", child.url(), token=child.token)
    assert_kazoo_error(old_token, 401, "invalid_credentials")
    old_login = await call(api, "PUT", "/v2/api_auth", data={"api_key": child.api_key})
    assert_kazoo_error(old_login, 404, "bad_identifier")
    new_login = await call(api, "PUT", "/v2/api_auth", data={"api_key": new_key})
    assert new_login.status == 201
    works = await call(api, "GET", child.url(), token=new_login.body["auth_token"])
    assert works.status == 200


async def test_put_without_an_id_creates_a_child_of_the_caller(api, couch, make_account):
    reseller = await make_account("Reseller")
    reply = await call(api, "PUT", "/v2/accounts", data={"name": "Mine"}, token=reseller.token)
    assert reply.status == 201
    stored = await couch.get_doc(account_db(reply.data["id"]), reply.data["id"])
    assert stored["pvt_tree"] == [reseller.id]
    anonymous = await call(api, "PUT", "/v2/accounts", data={"name": "Nobody's"})
    assert_kazoo_error(anonymous, 401, "invalid_credentials")


async def test_invalid_account_body_is_400_even_with_an_if_match(api, master):
    for method in ("PUT", "POST"):
        reply = await call(
            api,
            method,
            f"/v2/accounts/{master.id}",
            data={"name": ""},
            token=master.token,
            headers={"If-Match": '"1-abc"'},
        )
        assert_kazoo_error(reply, 400, "validation error")
