"""`_design/trunkstore` lookups as KAZOO's trunkstore reads them (§12.1, §14 #1-#2).

The views are queried straight from CouchDB, for documents the API wrote and documents
KAZOO wrote, so a change of key or value shape shows up here before it breaks call
routing.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from helpers import call, create_trunk
from kazoo_docs import iterator_design_doc, kazoo_trunks, legacy_trunk

from service.couchdb.client import CouchClient
from service.couchdb.design_docs import ensure_design_docs
from service.couchdb.view_maintenance import KAZOO_ITERATOR_VERSION, report_for
from service.kazoo.ids import encoded_account_db
from service.paths import DESIGN_DIR

Json = dict[str, Any]


def js_truthy(value: Any) -> bool:
    if value is None or value is False or value == "":
        return False
    return not (isinstance(value, int | float) and not isinstance(value, bool) and value == 0)


def js_or(value: Any, default: Any) -> Any:
    return value if js_truthy(value) else default


def expected_did_rows(doc: Json) -> list[Json]:
    """lookup_did as §12.1 describes it, for a live `sys_info` doc."""
    account = doc.get("account")
    rows = []
    for server in doc.get("servers", []):
        if not isinstance(server, dict) or server.get("enabled") is False:
            continue
        if not js_truthy(server.get("DIDs")):
            continue
        auth = copy.deepcopy(server.get("auth") or {})
        if isinstance(account, dict) and "auth_realm" in account:
            auth["auth_realm"] = account["auth_realm"]
        for did, did_options in server["DIDs"].items():
            value = {
                "callerid_server": js_or(server.get("callerid"), ""),
                "callerid_account": js_or(doc.get("callerid"), ""),
                "e911_callerid_server": js_or(server.get("e911_callerid"), ""),
                "e911_callerid_account": js_or(doc.get("e911_callerid"), ""),
                "auth": auth,
                "DID_Opts": did_options,
                "inbound_format": js_or(server.get("inbound_format"), "npan"),
            }
            # JSON drops `undefined`: no `server` without options, no `account` without one.
            if "options" in server:
                value["server"] = server["options"]
            if account is not None:
                value["account"] = account
            rows.append({"id": doc["_id"], "key": did, "value": value})
    return rows


def expected_user_flag_rows(doc: Json) -> list[Json]:
    """lookup_user_flags as §12.1 describes it, with the §14 #2 guards."""
    account = doc.get("account")
    if not isinstance(account, dict) or not isinstance(account.get("auth_realm"), str):
        return []
    realm = account["auth_realm"]
    rows = []
    for server in doc.get("servers", []):
        auth = server.get("auth") if isinstance(server, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("auth_user"), str):
            continue
        clone = copy.deepcopy(server)
        clone["auth"]["auth_realm"] = realm
        value: Json = {"server": clone, "account": account}
        if "call_restriction" in doc:
            value["call_restriction"] = doc["call_restriction"]
        key = [realm.lower(), auth["auth_user"].lower()]
        rows.append({"id": doc["_id"], "key": key, "value": value})
    return rows


async def view_rows(couch: CouchClient, db: str, view: str) -> list[Json]:
    # crossbar_listing has a `_count` reduce; the lookups have none.
    params = {"reduce": False} if view == "crossbar_listing" else {}
    result = await couch.view(db, "trunkstore", view, **params)
    return sorted(result["rows"], key=lambda row: (str(row["key"]), row["id"]))


def by_key(rows: list[Json]) -> list[Json]:
    return sorted(rows, key=lambda row: (str(row["key"]), row["id"]))


API_TRUNK: Json = {
    "name": "Three Servers",
    "account": {"trunks": 4},
    "servers": [
        {
            "server_name": "Password PBX",
            "auth": {"auth_user": "PBX-One", "auth_password": "pbx-one-secret"},
            "options": {"inbound_format": "e164", "codecs": ["PCMU"]},
            "DIDs": {"+14155550100": {}, "+14155550101": {"force_outbound": True}},
        },
        {
            "server_name": "IP PBX",
            "auth": {"auth_method": "IP", "ip": "198.51.100.20"},
            "DIDs": {"+14155550102": {}},
        },
        {
            "server_name": "Switched off",
            "enabled": False,
            "auth": {"auth_user": "disabled1", "auth_password": "disabled-secret"},
            "DIDs": {"+14155550103": {}},
        },
    ],
}


async def test_lookups_for_an_api_written_trunk(api, couch, master):
    created = await create_trunk(api, master, API_TRUNK)
    stored = await couch.get_doc(master.db, created.data["id"])

    dids = await view_rows(couch, master.db, "lookup_did")
    assert dids == by_key(expected_did_rows(stored))
    # A server-level `enabled: false` hides its DIDs from routing (§12.1, §14 #3).
    assert [row["key"] for row in dids] == ["+14155550100", "+14155550101", "+14155550102"]
    assert dids[0]["value"] == {
        "callerid_server": "",
        "callerid_account": "",
        "e911_callerid_server": "",
        "e911_callerid_account": "",
        "auth": {
            "auth_method": "password",
            "auth_user": "PBX-One",
            "auth_password": "pbx-one-secret",
            "auth_realm": master.realm,
        },
        "DID_Opts": {"force_outbound": False},
        "inbound_format": "npan",
        "server": stored["servers"][0]["options"],
        "account": {"trunks": 4, "auth_realm": master.realm},
    }
    # The IP server has no `options`: the value has no `server` key at all.
    assert "server" not in dids[2]["value"]

    flags = await view_rows(couch, master.db, "lookup_user_flags")
    assert flags == by_key(expected_user_flag_rows(stored))
    assert [row["key"] for row in flags] == [
        [master.realm, "disabled1"],
        [master.realm, "pbx-one"],
    ]
    password_server = flags[1]["value"]["server"]
    assert password_server["auth"]["auth_realm"] == master.realm
    assert password_server["server_name"] == "Password PBX"
    assert "call_restriction" not in flags[1]["value"]


async def test_lookups_for_kazoo_written_trunks(couch, master):
    docs = kazoo_trunks(master.id, master.realm, encoded_account_db(master.id))
    legacy = docs[2]
    # Old kazoo-ui docs keep a mixed-case realm and call restrictions.
    legacy["account"]["auth_realm"] = "Legacy.SIP.Example"
    legacy["call_restriction"] = {"international": {"action": "deny"}}
    for doc in docs:
        await couch.put_doc(master.db, doc)

    dids = await view_rows(couch, master.db, "lookup_did")
    assert dids == by_key([row for doc in docs for row in expected_did_rows(doc)])
    legacy_row = next(row for row in dids if row["id"] == legacy["_id"])
    # The legacy server-level keys are what this view reads (§14 #3).
    assert legacy_row["value"]["callerid_server"] == legacy["servers"][0]["callerid"]
    assert legacy_row["value"]["callerid_account"] == legacy["callerid"]
    assert legacy_row["value"]["inbound_format"] == "e164"
    assert legacy_row["value"]["DID_Opts"] == {}
    assert legacy_row["value"]["account"]["trunks"] == "0"

    flags = await view_rows(couch, master.db, "lookup_user_flags")
    assert flags == expected_user_flag_rows(legacy)
    assert flags[0]["key"] == ["legacy.sip.example", "legacyuser"]
    assert flags[0]["value"]["server"]["auth"]["auth_realm"] == "Legacy.SIP.Example"
    assert flags[0]["value"]["call_restriction"] == {"international": {"action": "deny"}}


async def test_deleted_and_foreign_documents_have_no_rows(api, couch, master):
    soft = await call(api, "PUT", master.url(), data=API_TRUNK, token=master.token)
    other_numbers = copy.deepcopy(API_TRUNK)
    for position, server in enumerate(other_numbers["servers"]):
        server["DIDs"] = {f"+1312555020{position}": {}}
    hard = await call(api, "PUT", master.url(), data=other_numbers, token=master.token)
    assert (soft.status, hard.status) == (201, 201), hard.text
    await call(api, "DELETE", master.url(f"/{soft.data['id']}"), token=master.token)
    await call(
        api,
        "DELETE",
        master.url(f"/{hard.data['id']}"),
        token=master.token,
        params={"should_soft_delete": "false"},
    )
    deleted_by_kazoo = legacy_trunk(master.id, master.realm)
    deleted_by_kazoo["pvt_deleted"] = True
    await couch.put_doc(master.db, deleted_by_kazoo)
    device = legacy_trunk(master.id, master.realm, doc_id="not-a-trunk")
    device["pvt_type"] = "device"
    await couch.put_doc(master.db, device)

    assert await view_rows(couch, master.db, "lookup_did") == []
    # KAZOO's own lookup_user_flags still lists soft-deleted docs (§12.1); ours does not.
    assert await view_rows(couch, master.db, "lookup_user_flags") == []


async def test_one_bad_server_never_hides_the_others(couch, master):
    good = {"auth": {"auth_method": "password", "auth_user": "good", "auth_password": "pw-1"}}
    doc = {
        "_id": "mixed-servers",
        "pvt_type": "sys_info",
        "account": {"auth_realm": master.realm},
        "servers": [
            {"auth": {"auth_method": "IP", "ip": "192.0.2.1"}, "DIDs": {"+14155550110": {}}},
            {"DIDs": {"+14155550111": {}}},
            None,
            {"auth": {"auth_method": "password", "auth_user": 42}},
            {**good, "DIDs": {"+14155550112": {}}},
        ],
    }
    no_account = {
        "_id": "no-account",
        "pvt_type": "sys_info",
        "servers": [{**good, "DIDs": {"+14155550113": {}}}],
    }
    no_realm = {**no_account, "_id": "no-realm", "account": {"trunks": 1}}
    for each in (doc, no_account, no_realm):
        await couch.put_doc(master.db, each)

    dids = await view_rows(couch, master.db, "lookup_did")
    assert dids == by_key(
        expected_did_rows(doc) + expected_did_rows(no_account) + expected_did_rows(no_realm)
    )
    rows = {row["key"]: row for row in dids}
    assert set(rows) == {"+14155550110", "+14155550111", "+14155550112", "+14155550113"}
    # A server without `auth` still routes; its auth is just the realm.
    assert rows["+14155550111"]["value"]["auth"] == {"auth_realm": master.realm}
    # Without `account` there is no realm and no `account` in the value.
    missing = next(row for row in dids if row["id"] == "no-account")
    assert missing["value"]["auth"] == good["auth"]
    assert "account" not in missing["value"]

    flags = await view_rows(couch, master.db, "lookup_user_flags")
    # Only the password server of `mixed-servers`: the IP, auth-less, null and numeric-user
    # servers are skipped instead of throwing away the whole document.
    assert [(row["id"], row["key"]) for row in flags] == [("mixed-servers", [master.realm, "good"])]


async def test_kazoo_iterator_views_index_nothing_until_ours_are_back(couch, master):
    ours = await couch.get_doc(master.db, "_design/trunkstore")
    kazoos = iterator_design_doc()
    kazoos["_rev"] = ours["_rev"]
    await couch.put_doc(master.db, kazoos)
    trunk = legacy_trunk(master.id, master.realm)
    await couch.put_doc(master.db, trunk)

    # §14 #1: no `Iterator` global (CouchDB 3.2+, the embedded server), so no rows.
    assert await view_rows(couch, master.db, "lookup_did") == []
    assert len(await view_rows(couch, master.db, "crossbar_listing")) == 1

    changes = await ensure_design_docs(couch, master.db, "account")
    assert len(changes) == 1
    report = report_for(changes[0], "account")
    assert (report.action, report.replaced) == ("updated", KAZOO_ITERATOR_VERSION)
    # Its listing view is the same as ours; only the lookups differ.
    assert report.views == ("lookup_did", "lookup_user_flags")
    assert await view_rows(couch, master.db, "lookup_did") == expected_did_rows(trunk)
    assert await view_rows(couch, master.db, "lookup_user_flags") == expected_user_flag_rows(trunk)
    # The second pass finds nothing to do.
    assert await ensure_design_docs(couch, master.db, "account") == []


async def test_design_doc_files_are_plain_couchdb_documents(couch, master):
    """`couch/design/account/trunkstore.json` is what is stored, content for content."""
    on_disk = json.loads((DESIGN_DIR / "account" / "trunkstore.json").read_text())
    stored = await couch.get_doc(master.db, "_design/trunkstore")
    stored.pop("_rev")
    assert stored == on_disk
    for view in on_disk["views"].values():
        # One string per map (not KAZOO's list of lines): `curl -X PUT` ready.
        assert isinstance(view["map"], str)
        assert "Iterator" not in view["map"]
