"""`kazoo-connectivity ensure-views` and the same check at service start-up.

Design docs get overwritten in real life (KAZOO's view refresh, replication of
`_design/*` from a KAZOO CouchDB); the command puts ours back, says whose version it
replaced, and changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from cli_runner import run_cli
from instances import instance
from kazoo_docs import iterator_design_doc

from service.couchdb.client import CouchClient, DocumentNotFound
from service.couchdb.design_docs import design_docs
from service.couchdb.view_maintenance import KAZOO_ITERATOR_VERSION, OTHER_VERSION, VIEW_CHECK

TRUNKSTORE = "_design/trunkstore"


async def ensure_views_cli(couch_url: str) -> tuple[int, list[dict], str]:
    """Runs the command as an operator would; returns (exit code, JSON lines, stderr)."""
    done = await run_cli("ensure-views", couch_url=couch_url)
    return done.code, [json.loads(line) for line in done.out.splitlines()], done.err


async def replace_design_doc(couch: CouchClient, db: str, doc: dict) -> None:
    stored = await couch.get_doc(db, TRUNKSTORE)
    await couch.put_doc(db, {**doc, "_id": TRUNKSTORE, "_rev": stored["_rev"]})


def ours(doc_id: str = TRUNKSTORE) -> dict:
    return next(doc for doc in design_docs("account") if doc["_id"] == doc_id)


async def test_ensure_views_reports_what_it_replaced_and_is_idempotent(
    couch, couch_url, make_account
):
    overwritten = await make_account("Overwritten by KAZOO")
    missing = await make_account("Views deleted")
    edited = await make_account("Listing edited")
    await replace_design_doc(couch, overwritten.db, iterator_design_doc())
    stored = await couch.get_doc(missing.db, TRUNKSTORE)
    await couch.delete_doc(missing.db, TRUNKSTORE, stored["_rev"])
    someone_elses = json.loads(json.dumps(ours()))
    someone_elses["views"]["crossbar_listing"]["map"] = "function(doc) { emit(doc._id, null); }"
    await replace_design_doc(couch, edited.db, someone_elses)
    # KAZOO's monthly databases are not account databases: never touched.
    modb = f"{overwritten.db}-202401"
    await couch.create_db(modb)

    code, lines, err = await ensure_views_cli(couch_url)
    assert code == 0, err
    mine = {line["db"]: line for line in lines if line["design_doc"] == TRUNKSTORE}
    assert mine[overwritten.db] == {
        "db": overwritten.db,
        "design_doc": TRUNKSTORE,
        "action": "updated",
        "replaced": KAZOO_ITERATOR_VERSION,
        "views": ["lookup_did", "lookup_user_flags"],
    }
    assert mine[missing.db] == {"db": missing.db, "design_doc": TRUNKSTORE, "action": "created"}
    assert mine[edited.db] == {
        "db": edited.db,
        "design_doc": TRUNKSTORE,
        "action": "updated",
        "replaced": OTHER_VERSION,
        "views": ["crossbar_listing"],
    }
    assert modb not in {line["db"] for line in lines}
    assert all(line["action"] != "failed" for line in lines)
    assert "databases checked" in err
    for account in (overwritten, missing, edited):
        stored = await couch.get_doc(account.db, TRUNKSTORE)
        assert {k: v for k, v in stored.items() if k != "_rev"} == ours()
    with pytest.raises(DocumentNotFound):
        await couch.get_doc(modb, TRUNKSTORE)

    again_code, again, again_err = await ensure_views_cli(couch_url)
    assert (again_code, again) == (0, []), again_err
    assert "0 design docs written" in again_err
    await couch.delete_db(modb)


async def test_service_start_up_puts_our_views_back_in_the_background(
    couch, couch_url, make_account, caplog
):
    account = await make_account("Replicated from KAZOO")
    await replace_design_doc(couch, account.db, iterator_design_doc())
    caplog.set_level("INFO", logger="service.couchdb.view_maintenance")

    async with instance(couch_url) as client:
        # The service answers while the check may still be running.
        assert (await client.get("/__lbheartbeat__")).status == 200
        summary = await asyncio.wait_for(client.server.app[VIEW_CHECK], timeout=60)

    assert summary is not None
    replaced = [report for report in summary.reports if report.db == account.db]
    assert [(r.design_doc, r.replaced) for r in replaced] == [(TRUNKSTORE, KAZOO_ITERATOR_VERSION)]
    stored = await couch.get_doc(account.db, TRUNKSTORE)
    assert {k: v for k, v in stored.items() if k != "_rev"} == ours()
    warnings = [
        r
        for r in caplog.records
        if r.name == "service.couchdb.view_maintenance"
        and getattr(r, "couch_db", None) == account.db
    ]
    assert warnings and warnings[0].levelname == "WARNING"
    assert "Iterator" in warnings[0].getMessage()
