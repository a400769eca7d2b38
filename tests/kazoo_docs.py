"""Connectivity documents as KAZOO itself stores them, written for these tests.

They have the shapes of real KAZOO documents (docs/kazoo-compatibility.md
appendix B): keys KAZOO's UIs add (`server_name`, `server_type`, `cfg`, `monitor`,
`permissions`, `options.codecs`, `ui_metadata`), private fields crossbar never writes
(`pvt_document_hash`), legacy string numbers, and no `id` key.
"""

from __future__ import annotations

import copy
from typing import Any

from service.kazoo.ids import encoded_account_db

Json = dict[str, Any]

# Gregorian seconds of a save in 2019 and one in 2020 (KAZOO's clock, not ours).
CREATED_2019 = 63_720_000_000
MODIFIED_2020 = 63_750_000_000


def ip_trunk(account_id: str, realm: str, doc_id: str = "trunkstore-ip-000000000000000001") -> Json:
    """Written by an older KAZOO tool: an IP-authenticated server, no crossbar fields."""
    return {
        "_id": doc_id,
        "name": "Office PBX",
        "account": {"auth_realm": realm},
        "servers": [
            {
                "server_name": "Office PBX A",
                "server_type": "asterisk",
                "auth": {"auth_method": "IP", "ip": "198.51.100.7"},
                "DIDs": {},
                "cfg": {},
                "monitor": {"monitor_enabled": False},
                "permissions": {"users": []},
                "options": {
                    "caller_id": {},
                    "codecs": ["PCMU", "G729"],
                    "delay": 0,
                    "e911_info": {},
                    "enabled": True,
                    "failover": {},
                    "force_outbound": False,
                    "inbound_format": "1npan",
                    "international": False,
                    "media_handling": "process",
                },
            }
        ],
        "pvt_type": "sys_info",
        "pvt_vsn": "1",
        "pvt_account_id": account_id,
        "pvt_account_db": encoded_account_db(account_id),
        "pvt_created": CREATED_2019,
        "pvt_modified": MODIFIED_2020,
        "pvt_document_hash": "0f4b6c8e2d1a9b7c3e5f8a0d2c4b6e81",
    }


def monster_trunk(
    account_id: str,
    realm: str,
    stale_account_db: str,
    doc_id: str = "5f0c1e2d3b4a59687766554433221100",
) -> Json:
    """Written by crossbar for Monster UI, with a `pvt_account_db` naming another account.

    KAZOO's fixtures have such a mismatch; the API must never rewrite it once set.
    """
    return {
        "_id": doc_id,
        "name": "Branch Trunk (North) 02",
        "account": {"auth_realm": realm},
        "servers": [
            {
                "server_name": "Media Server North",
                "server_type": "Cisco",
                "auth": {"auth_method": "IP", "ip": "203.0.113.20"},
                "DIDs": {"+13125550142": {"force_outbound": False}},
                "cfg": {},
                "monitor": {"monitor_enabled": False},
                "permissions": {"users": []},
                "options": {
                    "caller_id": {},
                    "delay": 0,
                    "e911_info": {},
                    "enabled": True,
                    "failover": {},
                    "force_outbound": False,
                    "hunt_non_reconcilable": False,
                    "inbound_format": "e164",
                    "international": False,
                    "media_handling": "bypass",
                },
            }
        ],
        "ui_metadata": {"origin": "pbxs", "ui": "monster-ui", "version": "4.3-140"},
        "pvt_type": "sys_info",
        "pvt_vsn": "1",
        "pvt_account_id": account_id,
        "pvt_account_db": stale_account_db,
        "pvt_created": CREATED_2019,
        "pvt_modified": CREATED_2019,
        "pvt_request_id": "7d1c55a0e4b34d2b9f8e6a1c2b3d4e5f",
        "pvt_is_authenticated": True,
        "pvt_auth_account_id": account_id,
        "pvt_auth_user_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "pvt_alphanum_name": "branchtrunknorth02",
    }


def legacy_trunk(
    account_id: str, realm: str, doc_id: str = "legacy-0123456789abcdef0123456789ab"
) -> Json:
    """An old kazoo-ui document: numbers as strings, server-level legacy keys."""
    return {
        "_id": doc_id,
        "account": {
            "auth_realm": realm,
            "credits": {"prepay": "0.00"},
            "trunks": "0",
            "inbound_trunks": "0",
        },
        "billing_account_id": account_id,
        "DIDs_Unassigned": {},
        "callerid": {"cid_name": "Legacy Co", "cid_number": "+13125550100"},
        "servers": [
            {
                "server_name": "legacypbx",
                "server_type": "FreeSWITCH",
                "auth": {
                    "auth_method": "Password",
                    "ip": "192.0.2.10",
                    "auth_user": "LegacyUser",
                    "auth_password": "legacy-secret-1",
                },
                "DIDs": {"+13125550199": {}},
                "callerid": {"cid_name": "Legacy PBX", "cid_number": "+13125550199"},
                "inbound_format": "e164",
                "monitor": {"monitor_enabled": False},
                "permissions": {"users": []},
                "options": {
                    "caller_id": {},
                    "e911_info": {},
                    "enabled": True,
                    "failover": {},
                    "inbound_format": "e164",
                    "international": False,
                    "ip": "192.0.2.10",
                    "media_handling": "bypass",
                },
            }
        ],
        "ui_metadata": {"ui": "kazoo-ui"},
        "pvt_type": "sys_info",
        "pvt_vsn": "1",
        "pvt_account_id": account_id,
        "pvt_account_db": encoded_account_db(account_id),
        "pvt_created": CREATED_2019,
        "pvt_modified": CREATED_2019 + 149,
        "pvt_request_id": "c3b0a4f1e2d34c5b8a6f7e8d9c0b1a2f",
    }


def kazoo_trunks(account_id: str, realm: str, stale_account_db: str) -> list[Json]:
    return [
        ip_trunk(account_id, realm),
        monster_trunk(account_id, realm, stale_account_db),
        legacy_trunk(account_id, realm),
    ]


def public_view(doc: Json) -> Json:
    """What the API must answer for a stored doc (§7.4), computed independently."""
    view = {k: copy.deepcopy(v) for k, v in doc.items() if not k.startswith(("_", "pvt_"))}
    view["id"] = doc["_id"]
    return view


def iterator_design_doc() -> Json:
    """A `_design/trunkstore` in the style KAZOO ships: lookups written with SpiderMonkey's
    legacy `Iterator()`, which neither CouchDB 3.2+ nor the embedded server has (§14 #1)."""
    lookup_did = (
        "function(doc) { if (doc.pvt_type != 'sys_info' || doc.pvt_deleted) return;"
        " var pairs = Iterator(doc.servers || []);"
        " for (var pair in pairs) { for (var did in pair[1].DIDs) {"
        " emit(did, {'server': pair[1].options}); } } }"
    )
    lookup_user_flags = (
        "function(doc) { if (doc.pvt_type != 'sys_info') return;"
        " var pairs = Iterator(doc.servers || []);"
        " for (var pair in pairs) { emit([doc.account.auth_realm, pair[1].auth.auth_user],"
        " {'server': pair[1]}); } }"
    )
    return {
        "_id": "_design/trunkstore",
        "language": "javascript",
        "views": {
            "crossbar_listing": {
                "map": "function(doc) { if (doc.pvt_type != 'sys_info' || doc.pvt_deleted)"
                " return; emit(doc._id, {'name': doc.name, 'servers': doc.servers}); }",
                "reduce": "_count",
            },
            "lookup_did": {"map": lookup_did},
            "lookup_user_flags": {"map": lookup_user_flags},
        },
    }
