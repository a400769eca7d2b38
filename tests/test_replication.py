"""Replication with a KAZOO CouchDB, both ways, between two real server processes.

A second embedded server plays KAZOO's CouchDB. Documents in KAZOO's shapes arrive by
`POST /_replicate`; the API lists, returns and updates them keeping every field KAZOO
would keep; what we write goes back out in KAZOO's shape; replication conflicts are
served as CouchDB's winning revision. Replication uses full URLs for source and target,
the only form Apache CouchDB 3 accepts.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest_asyncio
from conftest import requires_apache_couch
from helpers import PBX_TRUNK, assert_kazoo_error, call
from kazoo_docs import iterator_design_doc, kazoo_trunks, legacy_trunk, public_view

from service.couchdb.client import CouchClient
from service.couchdb.design_docs import ensure_design_docs
from service.couchdb.embedded import EmbeddedCouch, EmbeddedOptions
from service.couchdb.runtime import with_credentials
from service.couchdb.view_maintenance import KAZOO_ITERATOR_VERSION, report_for
from service.kazoo.ids import encoded_account_db, now_gregorian

Json = dict[str, Any]

# A pvt_account_db naming some other account, as in KAZOO's own fixtures (appendix B).
STALE_ACCOUNT_DB = encoded_account_db("f00d" + "0" * 28)
# Only connectivity docs: no design docs, no account doc (KAZOO has its own of both).
TRUNKS_ONLY = {"selector": {"pvt_type": "sys_info"}}

# Private fields crossbar writes on a save (§7.3), and the keys every stored doc has.
CROSSBAR_PRIVATE_FIELDS = {
    "pvt_type",
    "pvt_vsn",
    "pvt_account_id",
    "pvt_account_db",
    "pvt_created",
    "pvt_modified",
    "pvt_request_id",
    "pvt_is_authenticated",
    "pvt_auth_account_id",
    "pvt_alphanum_name",
}

MISSING = object()


@dataclass
class KazooCouch:
    """The second server: KAZOO's CouchDB."""

    url: str  # with admin credentials
    client: CouchClient


@pytest_asyncio.fixture(scope="module")
async def kazoo() -> AsyncIterator[KazooCouch]:
    password = secrets.token_urlsafe(16)
    server = EmbeddedCouch(EmbeddedOptions(admin_password=password))
    url = with_credentials(await server.start(), "admin", password)
    async with CouchClient(url) as client:
        yield KazooCouch(url=url, client=client)
    await server.stop()


def db_url(server_url: str, db: str) -> str:
    return f"{server_url}/{quote(db, safe='')}"


async def replicate(runner: CouchClient, source: str, target: str, **options: Any) -> Json:
    status, body = await runner.request(
        "POST", "_replicate", body={"source": source, "target": target, **options}
    )
    assert status == 200 and body["ok"], body
    assert body.get("doc_write_failures", 0) == 0, body
    return body


async def pull_from_kazoo(couch: CouchClient, couch_url: str, kazoo: KazooCouch, db: str) -> None:
    """Our server pulls KAZOO's account database into ours."""
    await replicate(couch, db_url(kazoo.url, db), db_url(couch_url, db))


async def push_to_kazoo(couch_url: str, kazoo: KazooCouch, db: str, **options: Any) -> None:
    """KAZOO's server pulls our account database (its connectivity docs) into its own."""
    await replicate(kazoo.client, db_url(couch_url, db), db_url(kazoo.url, db), **options)


async def seed_kazoo(kazoo: KazooCouch, db: str, docs: list[Json]) -> dict[str, Json]:
    """Writes docs on KAZOO's side; returns them by id, as stored there (with `_rev`)."""
    await kazoo.client.ensure_db(db)
    stored = {}
    for doc in docs:
        saved = await kazoo.client.put_doc(db, doc)
        stored[doc["_id"]] = {**doc, "_rev": saved.rev}
    return stored


# What any save of the legacy trunk (kazoo_docs.legacy_trunk) changes besides the stamps:
# the authentication stamps older tools never wrote, schema defaults that were missing
# (§6.2) and its numbers written as strings, coerced (§6.3).
LEGACY_TRUNK_FILLED_IN = {
    "pvt_is_authenticated",
    "pvt_auth_account_id",
    "account.trunks",
    "servers.0.options.delay",
    "servers.0.options.force_outbound",
    "servers.0.options.hunt_non_reconcilable",
    "servers.0.DIDs.+13125550199.force_outbound",
}


async def migrate_from_kazoo(
    couch: CouchClient, couch_url: str, kazoo: KazooCouch, db: str, docs: list[Json]
) -> dict[str, Json]:
    """Docs written on KAZOO's side, then pulled into ours: returns them as `seed_kazoo`."""
    seeded = await seed_kazoo(kazoo, db, docs)
    await pull_from_kazoo(couch, couch_url, kazoo, db)
    return seeded


def changed_paths(before: Any, after: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Every dotted path (0-based array positions) whose value differs, with both values."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: dict[str, tuple[Any, Any]] = {}
        for key in before.keys() | after.keys():
            child = f"{path}.{key}" if path else key
            changes.update(changed_paths(before.get(key, MISSING), after.get(key, MISSING), child))
        return changes
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        changes = {}
        for position, (old, new) in enumerate(zip(before, after, strict=True)):
            changes.update(changed_paths(old, new, f"{path}.{position}"))
        return changes
    # `True == 1` in Python; KAZOO's JSON tells them apart.
    if type(before) is type(after) and before == after:
        return {}
    return {path: (before, after)}


# What a save through crossbar changes on a doc that had all of them already (§7.3);
# `pvt_modified` too, unless the previous save was in the same second.
SAVE_STAMPS = {"_rev", "pvt_modified", "pvt_request_id"}


def saved_changes(before: Json, after: Json) -> set[str]:
    """The paths a save changed, with `pvt_modified` counted as changed (checked to move on)."""
    assert before["pvt_modified"] <= after["pvt_modified"] <= now_gregorian()
    return set(changed_paths(before, after)) | {"pvt_modified"}


async def test_kazoo_documents_replicated_in_are_listed_and_returned_as_stored(
    api, couch, couch_url, kazoo, make_account
):
    account = await make_account("Migrated from KAZOO")
    trunks = kazoo_trunks(account.id, account.realm, STALE_ACCOUNT_DB)
    seeded = await migrate_from_kazoo(couch, couch_url, kazoo, account.db, trunks)

    listed = await call(api, "GET", account.url(), token=account.token)
    assert listed.status == 200
    assert listed.data == sorted(seeded, reverse=True)
    for doc_id, doc in seeded.items():
        # Byte-for-byte the same document, revision included.
        assert await couch.get_doc(account.db, doc_id) == doc
        reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
        assert reply.status == 200, reply.text
        assert reply.data == public_view(doc)
        assert reply.body["revision"] == doc["_rev"]
        assert reply.headers["ETag"] == f'"{doc["_rev"]}"'
    # Their private fields are there to filter on, as in KAZOO (§9).
    ip_trunk_id = next(d for d in seeded if d.startswith("trunkstore-ip"))
    digest = seeded[ip_trunk_id]["pvt_document_hash"]
    by_hash = await call(
        api,
        "GET",
        account.url(),
        token=account.token,
        params={"filter_pvt_document_hash": digest},
    )
    assert by_hash.data == [ip_trunk_id]


async def test_updates_keep_every_field_kazoo_would_keep(
    api, couch, couch_url, kazoo, make_account
):
    account = await make_account("Updated after migration")
    trunks = kazoo_trunks(account.id, account.realm, STALE_ACCOUNT_DB)
    seeded = await migrate_from_kazoo(couch, couch_url, kazoo, account.db, trunks)
    ip_id, monster_id, legacy_id = list(seeded)

    # The fields KAZOO itself changes on a POST of the unchanged public view: the save
    # stamps (§7.3), schema defaults that were missing (§6.2), coerced legacy numbers
    # (§6.3), and the stamps the older tools never wrote.
    posted_changes = {
        ip_id: SAVE_STAMPS
        | {
            "pvt_is_authenticated",
            "pvt_auth_account_id",
            "pvt_alphanum_name",
            "servers.0.options.hunt_non_reconcilable",
        },
        monster_id: SAVE_STAMPS,
        legacy_id: SAVE_STAMPS | LEGACY_TRUNK_FILLED_IN,
    }
    for doc_id, original in seeded.items():
        shown = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
        request_id = f"round-trip-{doc_id[:8]}"
        posted = await call(
            api,
            "POST",
            account.url(f"/{doc_id}"),
            data=shown.data,
            token=account.token,
            headers={"X-Request-ID": request_id},
        )
        assert posted.status == 200, posted.text
        stored = await couch.get_doc(account.db, doc_id)
        changes = changed_paths(original, stored)
        assert set(changes) == posted_changes[doc_id], changes
        assert stored["pvt_request_id"] == request_id
        assert original["pvt_modified"] < stored["pvt_modified"] <= now_gregorian()
        assert stored["pvt_created"] == original["pvt_created"]
        assert posted.data == public_view(stored)

    legacy = await couch.get_doc(account.db, legacy_id)
    assert legacy["account"]["trunks"] == 0
    assert legacy["account"]["inbound_trunks"] == "0"  # not in the schema: left alone
    assert "pvt_alphanum_name" not in legacy  # no name, nothing to derive it from
    monster = await couch.get_doc(account.db, monster_id)
    assert monster["pvt_account_db"] == STALE_ACCOUNT_DB
    assert monster["pvt_auth_user_id"] == seeded[monster_id]["pvt_auth_user_id"]
    ip_trunk = await couch.get_doc(account.db, ip_id)
    assert ip_trunk["pvt_alphanum_name"] == "officepbx"
    assert ip_trunk["pvt_document_hash"] == seeded[ip_id]["pvt_document_hash"]

    # PATCH merges into KAZOO's own keys and leaves the rest alone.
    before_patch = await couch.get_doc(account.db, monster_id)
    patched = await call(
        api,
        "PATCH",
        account.url(f"/{monster_id}"),
        data={"ui_metadata": {"origin": "replication-test"}},
        token=account.token,
    )
    assert patched.status == 200, patched.text
    after_patch = await couch.get_doc(account.db, monster_id)
    assert saved_changes(before_patch, after_patch) == SAVE_STAMPS | {"ui_metadata.origin"}
    assert after_patch["ui_metadata"]["ui"] == "monster-ui"

    # A soft delete only marks the doc (§8).
    deleted = await call(api, "DELETE", account.url(f"/{legacy_id}"), token=account.token)
    assert deleted.status == 200
    after_delete = await couch.get_doc(account.db, legacy_id)
    assert saved_changes(legacy, after_delete) == SAVE_STAMPS | {"pvt_deleted"}
    gone = await call(api, "GET", account.url(f"/{legacy_id}"), token=account.token)
    assert_kazoo_error(gone, 404, "bad_identifier")


async def test_documents_go_back_out_to_kazoo_in_kazoos_shape(
    api, couch, couch_url, kazoo, make_account
):
    account = await make_account("Replicated back")
    trunks = [legacy_trunk(account.id, account.realm)]
    seeded = await migrate_from_kazoo(couch, couch_url, kazoo, account.db, trunks)
    (legacy_id,) = seeded
    await call(
        api,
        "PATCH",
        account.url(f"/{legacy_id}"),
        data={"name": "Legacy, renamed"},
        token=account.token,
    )
    created = await call(api, "PUT", account.url(), data=PBX_TRUNK, token=account.token)
    assert created.status == 201, created.text
    new_id = created.data["id"]
    removed = await call(
        api, "PUT", account.url(), data={"name": "Short-lived"}, token=account.token
    )
    await call(api, "DELETE", account.url(f"/{removed.data['id']}"), token=account.token)

    await push_to_kazoo(couch_url, kazoo, account.db, **TRUNKS_ONLY)

    for doc_id in (legacy_id, new_id, removed.data["id"]):
        assert await kazoo.client.get_doc(account.db, doc_id) == await couch.get_doc(
            account.db, doc_id
        )
    # No design doc and no account doc of ours went over.
    status, all_docs = await kazoo.client.request("GET", f"{quote(account.db, safe='')}/_all_docs")
    assert status == 200
    assert {row["id"] for row in all_docs["rows"]} == {legacy_id, new_id, removed.data["id"]}

    theirs = await kazoo.client.get_doc(account.db, new_id)
    assert "id" not in theirs
    assert {key for key in theirs if key.startswith(("_", "pvt_"))} == CROSSBAR_PRIVATE_FIELDS | {
        "_id",
        "_rev",
    }
    assert theirs["pvt_type"] == "sys_info"
    assert theirs["pvt_vsn"] == "1"
    assert theirs["pvt_account_id"] == account.id
    assert theirs["pvt_account_db"] == encoded_account_db(account.id)
    assert "%2F" in theirs["pvt_account_db"]
    assert abs(theirs["pvt_created"] - now_gregorian()) < 120
    assert theirs["pvt_modified"] == theirs["pvt_created"]
    assert theirs["pvt_request_id"] == created.body["request_id"]
    assert theirs["pvt_is_authenticated"] is True
    assert theirs["pvt_auth_account_id"] == account.id
    assert theirs["pvt_alphanum_name"] == "pbxtrunk"
    assert {k: v for k, v in theirs.items() if not k.startswith(("_", "pvt_"))} == {
        k: v for k, v in created.data.items() if k != "id"
    }
    # The full round trip, seen from KAZOO's side: in, read, PATCH, out. Only what KAZOO's
    # own PATCH would change has changed (the merged doc is validated like a POST, §7.5).
    renamed = await kazoo.client.get_doc(account.db, legacy_id)
    assert saved_changes(seeded[legacy_id], renamed) == SAVE_STAMPS | LEGACY_TRUNK_FILLED_IN | {
        "name",
        "pvt_alphanum_name",
    }
    assert renamed["pvt_alphanum_name"] == "legacyrenamed"


async def _edit_on_kazoo(kazoo: KazooCouch, db: str, doc_id: str, times: int, **fields: Any):
    for _ in range(times):
        doc = await kazoo.client.get_doc(db, doc_id)
        doc.update(fields)
        await kazoo.client.put_doc(db, doc)


async def test_replication_conflicts_are_served_as_the_winning_revision(
    api, couch, couch_url, kazoo, make_account
):
    account = await make_account("Edited on both sides")
    await kazoo.client.ensure_db(account.db)
    ids = {}
    for label in ("kazoo_wins", "ours_wins", "tombstone_loses", "deleted_wins"):
        data = copy.deepcopy(PBX_TRUNK)
        data["name"] = label
        data["servers"][0]["DIDs"] = {f"+1415555{len(ids):04d}": {}}
        reply = await call(api, "PUT", account.url(), data=data, token=account.token)
        assert reply.status == 201, reply.text
        ids[label] = reply.data["id"]
    await push_to_kazoo(couch_url, kazoo, account.db, **TRUNKS_ONLY)

    async def edit_here(label: str, times: int) -> None:
        for step in range(times):
            reply = await call(
                api,
                "PATCH",
                account.url(f"/{ids[label]}"),
                data={"edited_by": f"us-{step}"},
                token=account.token,
            )
            assert reply.status == 200, reply.text

    # CouchDB's winner: a live leaf over a deleted one, then the longest history.
    await edit_here("kazoo_wins", 1)
    await _edit_on_kazoo(kazoo, account.db, ids["kazoo_wins"], 2, edited_by="kazoo")
    await edit_here("ours_wins", 2)
    await _edit_on_kazoo(kazoo, account.db, ids["ours_wins"], 1, edited_by="kazoo")
    await edit_here("tombstone_loses", 1)
    doomed = await kazoo.client.get_doc(account.db, ids["tombstone_loses"])
    await kazoo.client.delete_doc(account.db, ids["tombstone_loses"], doomed["_rev"])
    await edit_here("deleted_wins", 1)
    await _edit_on_kazoo(kazoo, account.db, ids["deleted_wins"], 2, pvt_deleted=True)

    await pull_from_kazoo(couch, couch_url, kazoo, account.db)

    expected_author = {"kazoo_wins": "kazoo", "ours_wins": "us-1", "tombstone_loses": "us-0"}
    for label, author in expected_author.items():
        stored = await couch.get_doc(account.db, ids[label], conflicts="true")
        if label != "tombstone_loses":
            assert stored.get("_conflicts"), label
        reply = await call(api, "GET", account.url(f"/{ids[label]}"), token=account.token)
        assert reply.status == 200, reply.text
        assert reply.data["edited_by"] == author
        assert reply.headers["ETag"] == f'"{stored["_rev"]}"'
        assert "_conflicts" not in reply.data
    hidden = await call(api, "GET", account.url(f"/{ids['deleted_wins']}"), token=account.token)
    assert_kazoo_error(hidden, 404, "bad_identifier")

    listed = await call(api, "GET", account.url(), token=account.token)
    assert sorted(listed.data) == sorted(ids[label] for label in expected_author)
    filtered = await call(
        api, "GET", account.url(), token=account.token, params={"filter_edited_by": "kazoo"}
    )
    assert filtered.data == [ids["kazoo_wins"]]

    # Writes go on top of the winner; the losing branch stays for an operator to resolve.
    patched = await call(
        api,
        "PATCH",
        account.url(f"/{ids['kazoo_wins']}"),
        data={"resolved": False},
        token=account.token,
    )
    assert patched.status == 200, patched.text
    assert patched.data["edited_by"] == "kazoo"
    after = await couch.get_doc(account.db, ids["kazoo_wins"], conflicts="true")
    assert after["_rev"].startswith("4-")
    assert after["_conflicts"]
    posted = await call(
        api,
        "POST",
        account.url(f"/{ids['ours_wins']}"),
        data={"name": "posted over a conflict"},
        token=account.token,
    )
    assert posted.status == 200, posted.text
    removed = await call(api, "DELETE", account.url(f"/{ids['ours_wins']}"), token=account.token)
    assert removed.status == 200, removed.text


async def test_kazoo_design_doc_replicated_in_is_reported_and_replaced(
    couch, couch_url, kazoo, make_account
):
    account = await make_account("Views replicated from KAZOO")
    trunk = legacy_trunk(account.id, account.realm)
    await seed_kazoo(kazoo, account.db, [trunk, iterator_design_doc()])
    # KAZOO's copy has a longer history than ours, so it wins the replication conflict.
    await _edit_on_kazoo(kazoo, account.db, "_design/trunkstore", 2)
    # KAZOO's side pushes: Apache CouchDB's replicator fetches design docs one by one as
    # multipart/mixed, which the embedded server (KAZOO's stand-in here) cannot answer.
    await replicate(kazoo.client, db_url(kazoo.url, account.db), db_url(couch_url, account.db))
    assert (await couch.view(account.db, "trunkstore", "lookup_did"))["rows"] == []

    changes = await ensure_design_docs(couch, account.db, "account")
    reports = [report_for(change, "account") for change in changes]
    assert [(r.design_doc, r.replaced) for r in reports] == [
        ("_design/trunkstore", KAZOO_ITERATOR_VERSION)
    ]
    rows = (await couch.view(account.db, "trunkstore", "lookup_did"))["rows"]
    assert [(row["id"], row["key"]) for row in rows] == [(trunk["_id"], "+13125550199")]
    assert await ensure_design_docs(couch, account.db, "account") == []


@requires_apache_couch
async def test_apache_replicator_round_trip(api, couch, couch_url, make_account):
    """KAZOO's own CouchDB is an Apache CouchDB: its replicator pulls from ours and back."""
    account = await make_account("Apache to Apache")
    created = await call(api, "PUT", account.url(), data=PBX_TRUNK, token=account.token)
    assert created.status == 201, created.text
    doc_id = created.data["id"]
    mirror = f"kazoo_mirror_{secrets.token_hex(6)}"
    await couch.create_db(mirror)
    try:
        await replicate(
            couch, db_url(couch_url, account.db), db_url(couch_url, mirror), **TRUNKS_ONLY
        )
        theirs = await couch.get_doc(mirror, doc_id)
        assert theirs == await couch.get_doc(account.db, doc_id)
        theirs["ui_metadata"] = {"ui": "monster-ui", "origin": "kazoo"}
        await couch.put_doc(mirror, theirs)
        await replicate(couch, db_url(couch_url, mirror), db_url(couch_url, account.db))
        reply = await call(api, "GET", account.url(f"/{doc_id}"), token=account.token)
        assert reply.data["ui_metadata"] == {"ui": "monster-ui", "origin": "kazoo"}
        assert reply.body["revision"].startswith("2-")
    finally:
        await couch.delete_db(mirror)
