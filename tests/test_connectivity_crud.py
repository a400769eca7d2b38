"""The connectivity resource end to end: KAZOO's CRUD sequence and storage (§3, §4, §7, §8)."""

from __future__ import annotations

import copy
import time

import pytest
from helpers import PBX_TRUNK, assert_kazoo_error, call, unique_realm

from service.kazoo.ids import GREGORIAN_OFFSET, encoded_account_db


@pytest.fixture(params=["uncached", "cached"])
def either_api(request, api, cached_api):
    """The same test through an instance that reads CouchDB every time, and one that
    answers from its read cache (which follows every database this module touches)."""
    return api if request.param == "uncached" else cached_api


async def test_kazoo_crud_sequence(either_api, master):
    """pqc_cb_connectivity: empty list, create, patch, list, post with foreign realm, delete."""
    api = either_api
    empty = await call(api, "GET", master.url(), token=master.token)
    assert empty.status == 200
    assert empty.data == []
    assert empty.body["page_size"] == 0

    created = await call(api, "PUT", master.url(), data={"name": "pqc"}, token=master.token)
    assert created.status == 201
    doc_id = created.data["id"]
    assert created.headers["Location"] == master.url(f"/{doc_id}")
    assert created.data["servers"] == []
    assert created.data["account"] == {"auth_realm": master.realm}

    patched = await call(
        api, "PATCH", master.url(f"/{doc_id}"), data={"custom": "value"}, token=master.token
    )
    assert patched.status == 200
    assert patched.data["custom"] == "value"
    assert patched.data["name"] == "pqc"

    listed = await call(api, "GET", master.url(), token=master.token)
    assert listed.data == [doc_id]

    posted = await call(
        api,
        "POST",
        master.url(f"/{doc_id}"),
        data={"name": "pqc", "account": {"auth_realm": "random.realm.example"}},
        token=master.token,
    )
    assert posted.status == 200
    assert posted.data["account"]["auth_realm"] == master.realm
    assert "custom" not in posted.data

    deleted = await call(api, "DELETE", master.url(f"/{doc_id}"), token=master.token)
    assert deleted.status == 200
    assert deleted.data["_read_only"] == {"deleted": True}

    after = await call(api, "GET", master.url(), token=master.token)
    assert after.data == []


async def test_put_applies_defaults_and_returns_kazoo_envelope(api, master):
    reply = await call(
        api,
        "PUT",
        master.url(),
        data=PBX_TRUNK,
        token=master.token,
        headers={"X-Request-ID": "req-put-example"},
    )
    assert reply.status == 201
    body = reply.body
    assert body["status"] == "success"
    assert body["request_id"] == "req-put-example"
    assert body["auth_token"] == master.token
    assert body["revision"].startswith("1-")
    assert len(body["node"]) == 22
    assert body["timestamp"].endswith("Z")
    assert "version" in body
    server = reply.data["servers"][0]
    assert server["auth"] == {
        "auth_method": "password",
        "auth_user": "pbx1",
        "auth_password": "s3cret-pbx-password",
    }
    assert server["options"] == {
        "inbound_format": "e164",
        "delay": 0,
        "enabled": True,
        "force_outbound": False,
        "hunt_non_reconcilable": False,
        "media_handling": "bypass",
    }
    assert server["DIDs"] == {"+14155550100": {"force_outbound": False}}
    assert server["server_name"] == "PBX 1"
    assert reply.data["custom_field"] == 42
    assert reply.data["account"] == {"trunks": 2, "auth_realm": master.realm}


async def test_stored_document_has_kazoo_private_fields(api, master, couch):
    before = int(time.time()) + GREGORIAN_OFFSET
    reply = await call(
        api,
        "PUT",
        master.url(),
        data=PBX_TRUNK,
        token=master.token,
        headers={"X-Request-ID": "req-stored"},
    )
    stored = await couch.get_doc(master.db, reply.data["id"])
    assert stored["pvt_type"] == "sys_info"
    assert stored["pvt_vsn"] == "1"
    assert stored["pvt_account_id"] == master.id
    assert stored["pvt_account_db"] == encoded_account_db(master.id)
    assert "%2F" in stored["pvt_account_db"]
    assert before <= stored["pvt_created"] <= before + 5
    assert stored["pvt_modified"] == stored["pvt_created"]
    assert stored["pvt_request_id"] == "req-stored"
    assert stored["pvt_is_authenticated"] is True
    assert stored["pvt_auth_account_id"] == master.id
    assert stored["pvt_alphanum_name"] == "pbxtrunk"
    assert "id" not in stored
    assert stored["_rev"] == reply.body["revision"]
    public = {k: v for k, v in stored.items() if not k.startswith(("_", "pvt_"))}
    expected = {k: v for k, v in reply.data.items() if k != "id"}
    assert public == expected


async def test_client_chosen_id_is_honoured_once(api, master, couch):
    data = dict(PBX_TRUNK, id="trunkstore0000000000000000000042")
    first = await call(api, "PUT", master.url(), data=data, token=master.token)
    assert first.status == 201
    assert first.data["id"] == "trunkstore0000000000000000000042"
    stored = await couch.get_doc(master.db, "trunkstore0000000000000000000042")
    assert "id" not in stored
    again = await call(api, "PUT", master.url(), data=data, token=master.token)
    assert_kazoo_error(again, 409, "datastore_conflict")
    assert again.data == {"message": "conflicting documents"}


async def test_empty_looking_ids_are_ignored(api, master):
    for value in ("", "0", "undefined", "NULL", None):
        reply = await call(api, "PUT", master.url(), data={"id": value}, token=master.token)
        assert reply.status == 201
        assert len(reply.data["id"]) == 32
        assert reply.data["id"] != value


async def test_ids_starting_with_underscore_never_reach_couchdb(api, master):
    reply = await call(api, "PUT", master.url(), data={"id": "_design/evil"}, token=master.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert "id" in data
    for path in ("/_design%2Ftrunkstore", "/_all_docs", "/_design"):
        got = await call(api, "GET", master.url(path), token=master.token)
        assert_kazoo_error(got, 404, "bad_identifier")


async def test_get_returns_public_view_etag_and_expires(either_api, master):
    api = either_api
    created = await call(api, "PUT", master.url(), data=PBX_TRUNK, token=master.token)
    doc_id = created.data["id"]
    got = await call(api, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert got.status == 200
    assert got.data == created.data
    assert got.body["revision"] == created.body["revision"]
    assert got.headers["ETag"] == f'"{created.body["revision"]}"'
    assert got.headers["Expires"] == "Fri, 01 Jan 1999 00:00:00 GMT"
    assert not any(key.startswith("pvt_") or key == "_rev" for key in got.data)


async def test_post_replaces_public_fields_and_keeps_private_ones(api, master, couch):
    created = await call(api, "PUT", master.url(), data=PBX_TRUNK, token=master.token)
    doc_id = created.data["id"]
    before = await couch.get_doc(master.db, doc_id)
    posted = await call(
        api,
        "POST",
        master.url(f"/{doc_id}"),
        data={"name": "Renamed", "_rev": "1-bogus", "pvt_type": "device", "id": "elsewhere"},
        token=master.token,
    )
    assert posted.status == 200
    assert posted.body["revision"].startswith("2-")
    assert posted.data == {
        "name": "Renamed",
        "servers": [],
        "account": {"auth_realm": master.realm},
        "id": doc_id,
    }
    after = await couch.get_doc(master.db, doc_id)
    assert after["pvt_type"] == "sys_info"
    assert after["pvt_created"] == before["pvt_created"]
    assert after["pvt_alphanum_name"] == "renamed"
    assert "custom_field" not in after


async def test_post_with_empty_body_wipes_to_defaults(api, master):
    created = await call(api, "PUT", master.url(), data=PBX_TRUNK, token=master.token)
    doc_id = created.data["id"]
    reply = await call(api, "POST", master.url(f"/{doc_id}"), token=master.token)
    assert reply.status == 200
    assert reply.data == {"servers": [], "account": {"auth_realm": master.realm}, "id": doc_id}


async def test_post_reports_schema_errors_before_missing_doc(api, master):
    reply = await call(
        api, "POST", master.url("/doesnotexist"), data={"name": 5}, token=master.token
    )
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data["name"]["type"]["target"] == "string"
    missing = await call(api, "POST", master.url("/doesnotexist"), data={}, token=master.token)
    assert assert_kazoo_error(missing, 404, "bad_identifier") == {
        "cause": "doesnotexist",
        "message": "bad identifier",
    }


async def test_patch_merges_deeply_and_null_deletes(api, master):
    data = copy.deepcopy(PBX_TRUNK)
    data["ui_metadata"] = {"origin": "test", "keep": None}
    created = await call(api, "PUT", master.url(), data=data, token=master.token)
    doc_id = created.data["id"]
    assert created.data["ui_metadata"] == {"origin": "test", "keep": None}
    reply = await call(
        api,
        "PATCH",
        master.url(f"/{doc_id}"),
        data={
            "custom": "value",
            "custom_field": None,
            "account": {"trunks": 5},
            "servers": [{"auth": {"auth_method": "IP", "ip": "10.0.0.1"}}],
        },
        token=master.token,
    )
    assert reply.status == 200
    assert reply.data["custom"] == "value"
    assert "custom_field" not in reply.data
    assert reply.data["account"] == {"trunks": 5, "auth_realm": master.realm}
    assert reply.data["servers"] == [{"auth": {"auth_method": "IP", "ip": "10.0.0.1"}}]
    assert reply.data["name"] == "PBX Trunk"
    # KAZOO's merge drops nulls already stored in the doc.
    assert reply.data["ui_metadata"] == {"origin": "test"}


async def test_patch_with_empty_object_replaces_the_object(api, master):
    created = await call(
        api, "PUT", master.url(), data={"ui_metadata": {"a": 1, "b": 2}}, token=master.token
    )
    doc_id = created.data["id"]
    reply = await call(
        api, "PATCH", master.url(f"/{doc_id}"), data={"ui_metadata": {}}, token=master.token
    )
    assert reply.data["ui_metadata"] == {}


async def test_patch_result_is_validated(api, master):
    created = await call(api, "PUT", master.url(), data=PBX_TRUNK, token=master.token)
    doc_id = created.data["id"]
    reply = await call(
        api, "PATCH", master.url(f"/{doc_id}"), data={"account": {"trunks": -1}}, token=master.token
    )
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data == {
        "account.trunks": {
            "minimum": {"message": "Value must be at least 0", "target": 0, "value": -1}
        }
    }
    missing = await call(api, "PATCH", master.url("/nope"), data={}, token=master.token)
    assert_kazoo_error(missing, 404, "bad_identifier")


async def test_soft_delete_hides_but_keeps_the_document(either_api, master, couch):
    api = either_api
    created = await call(
        api, "PUT", master.url(), data=dict(PBX_TRUNK, id="soft-1"), token=master.token
    )
    revision = created.body["revision"]
    deleted = await call(api, "DELETE", master.url("/soft-1"), token=master.token)
    assert deleted.status == 200
    # KAZOO reports the revision from before the delete write.
    assert deleted.body["revision"] == revision
    assert deleted.data["_read_only"] == {"deleted": True}
    assert deleted.data["name"] == "PBX Trunk"
    stored = await couch.get_doc(master.db, "soft-1")
    assert stored["pvt_deleted"] is True
    assert stored["_rev"].startswith("2-")
    for method in ("GET", "POST", "PATCH", "DELETE"):
        reply = await call(api, method, master.url("/soft-1"), data={}, token=master.token)
        assert_kazoo_error(reply, 404, "bad_identifier")
    again = await call(api, "PUT", master.url(), data={"id": "soft-1"}, token=master.token)
    assert_kazoo_error(again, 409, "datastore_conflict")


async def test_hard_delete_removes_the_document(api, master, couch):
    from service.couchdb.client import DocumentNotFound

    await call(api, "PUT", master.url(), data={"id": "hard-1"}, token=master.token)
    reply = await call(
        api,
        "DELETE",
        master.url("/hard-1"),
        token=master.token,
        params={"should_soft_delete": "false"},
    )
    assert reply.status == 200
    try:
        await couch.get_doc(master.db, "hard-1")
    except DocumentNotFound:
        pass
    else:
        raise AssertionError("hard delete left the document in CouchDB")
    # The envelope flag works as well as the query string.
    await call(api, "PUT", master.url(), data={"id": "hard-2"}, token=master.token)
    reply = await call(
        api,
        "DELETE",
        master.url("/hard-2"),
        body={"data": {}, "should_soft_delete": False},
        token=master.token,
    )
    assert reply.status == 200
    recreated = await call(api, "PUT", master.url(), data={"id": "hard-2"}, token=master.token)
    assert recreated.status == 201


async def test_documents_of_other_types_are_not_served(api, master, couch):
    await couch.put_doc(master.db, {"_id": "a-device", "pvt_type": "device", "name": "phone"})
    reply = await call(api, "GET", master.url("/a-device"), token=master.token)
    assert_kazoo_error(reply, 404, "bad_identifier")
    listed = await call(api, "GET", master.url(), token=master.token)
    assert "a-device" not in listed.data


async def test_realm_follows_the_account(api, make_account):
    account = await make_account("Realm Holder", realm=unique_realm("pbx.realm-holder"))
    reply = await call(
        api,
        "PUT",
        account.url(),
        data={"account": {"auth_realm": "mine.example"}},
        token=account.token,
    )
    assert reply.data["account"]["auth_realm"] == account.realm
