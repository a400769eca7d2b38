"""`import-numbers`, `ensure-numbers`, and number updates that fail (§11.2).

A number doc that cannot be updated never costs the connectivity write: the update is
tried twice, then logged, and `ensure-numbers` repairs it. The failures are real ones,
made by the fault proxy (tests/faultproxy.py) between a service instance and CouchDB.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest_asyncio
from aiohttp.test_utils import TestClient
from cli_runner import run_cli
from faultproxy import FaultProxy
from helpers import call
from instances import proxied_instance
from number_helpers import (
    copy_doc,
    fresh_number,
    kazoo_number,
    npan,
    number_doc,
    routing_trunk,
    store_number,
)

from service.kazoo.ids import new_id, now_gregorian
from service.numbers.reconcile import NumberReconciler


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def test_import_numbers_from_a_csv_file(couch, couch_url, make_account, tmp_path):
    account = await make_account("Importer")
    other = await make_account("Other")
    first, second, reserved, foreign = (fresh_number() for _ in range(4))
    await store_number(couch, kazoo_number(foreign, owner=other.id))
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text(
        "number,state\n"
        f"{first}\n"
        f"{npan(second)},in_service\n"
        "\n"
        f"1{npan(reserved)},reserved\n"
        f"{foreign}\n"
        "12\n"
        f"{first}\n",
        encoding="utf-8",
    )
    code, out, err = await run_cli(
        "import-numbers", "--account", account.id, str(csv_file), couch_url=couch_url
    )
    assert code == 1, err  # two rows failed
    results = {(line["line"], line["result"]) for line in json_lines(out)}
    assert results == {
        (2, "created"),
        (3, "created"),
        (5, "created"),
        (6, "error"),
        (7, "error"),
        (8, "unchanged"),
    }
    errors = {line["line"]: line for line in json_lines(out) if line["result"] == "error"}
    assert errors[6]["error"] == "number_exists" and errors[7]["error"] == "not_reconcilable"
    assert "3 created, 1 unchanged, 2 error" in err
    assert (await number_doc(couch, second))["pvt_assigned_to"] == account.id
    assert (await number_doc(couch, reserved))["pvt_state"] == "reserved"
    assert await copy_doc(couch, account.id, first) is not None
    assert (await number_doc(couch, foreign))["pvt_assigned_to"] == other.id
    code, _, err = await run_cli(
        "import-numbers", "--account", "0" * 32, str(csv_file), couch_url=couch_url
    )
    assert code == 1 and "does not exist" in err


def sys_info(account, servers_dids: list[list[str]]) -> dict:
    """A connectivity doc as KAZOO stores it, written around the API (as replication does)."""
    now = now_gregorian()
    doc = routing_trunk(*servers_dids)
    doc.update(
        _id=new_id(),
        account={"auth_realm": account.realm},
        pvt_type="sys_info",
        pvt_account_id=account.id,
        pvt_created=now,
        pvt_modified=now,
        pvt_vsn="1",
    )
    return doc


async def test_ensure_numbers_repairs_usage_and_copies_and_reports_duplicates(
    couch, couch_url, make_account
):
    account = await make_account("Replicated")
    unassigned, stale, no_copy, twice = (fresh_number() for _ in range(4))
    await store_number(couch, kazoo_number(unassigned, owner=account.id))
    await store_number(couch, kazoo_number(stale, owner=account.id, used_by="trunkstore"))
    await store_number(
        couch, kazoo_number(no_copy, owner=account.id, used_by="trunkstore"), copy=False
    )
    first = sys_info(account, [[npan(unassigned), no_copy], [twice]])
    second = sys_info(account, [["1" + npan(twice)]])
    for doc in (first, second):
        await couch.put_doc(account.db, doc)

    def ours(out: str) -> dict[tuple[str, str], dict]:
        mine = (unassigned, stale, no_copy, twice)
        return {(f["action"], f["number"]): f for f in json_lines(out) if f["number"] in mine}

    code, out, err = await run_cli("ensure-numbers", "--dry-run", couch_url=couch_url)
    assert code == 0, err
    planned = ours(out)
    assert set(planned) == {
        ("assigned", unassigned),
        ("released", stale),
        ("copy_written", no_copy),
        ("duplicate_did", twice),
    }
    assert "pvt_used_by" not in await number_doc(couch, unassigned)  # dry run
    assert planned[("assigned", unassigned)]["connectivity_id"] == first["_id"]
    routed_by = planned[("duplicate_did", twice)]["routed_by"]
    assert sorted(routed_by, key=lambda place: place["path"]) == [
        {"connectivity_id": second["_id"], "path": f"servers.0.DIDs.1{npan(twice)}"},
        {"connectivity_id": first["_id"], "path": f"servers.1.DIDs.{twice}"},
    ]

    code, out, err = await run_cli("ensure-numbers", couch_url=couch_url)
    assert code == 0, err
    assert set(ours(out)) == set(planned)
    assert "duplicate DIDs" in err
    assert (await number_doc(couch, unassigned))["pvt_used_by"] == "trunkstore"
    assert (await copy_doc(couch, account.id, unassigned))["pvt_used_by"] == "trunkstore"
    assert "pvt_used_by" not in await number_doc(couch, stale)
    assert "pvt_used_by" not in await copy_doc(couch, account.id, stale)
    assert (await copy_doc(couch, account.id, no_copy))["pvt_used_by"] == "trunkstore"
    # Duplicates are reported, never dropped: both documents still route the number.
    for doc in (first, second):
        assert (await couch.get_doc(account.db, doc["_id"]))["servers"] == doc["servers"]

    code, out, _ = await run_cli("ensure-numbers", couch_url=couch_url)
    assert set(ours(out)) == {("duplicate_did", twice)}


# -- number updates that fail --------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def faulty(proxy: FaultProxy) -> AsyncIterator[TestClient]:
    client = await proxied_instance(proxy)
    yield client
    await client.close()


async def test_a_failed_number_update_is_retried_once(faulty, proxy, couch, make_account):
    account = await make_account("Retried")
    number = fresh_number()
    await store_number(couch, kazoo_number(number, owner=account.id))
    proxy.clear()
    proxy.inject("respond", method="PUT", path_contains=f"/{quote(number, safe='')}", status=500)
    reply = await call(
        faulty, "PUT", account.url(), data=routing_trunk([number]), token=account.token
    )
    assert reply.status == 201, reply.text
    assert len(proxy.injected) == 1
    assert (await number_doc(couch, number))["pvt_used_by"] == "trunkstore"


async def test_a_number_update_that_keeps_failing_never_loses_the_write(
    faulty, proxy, couch, couch_url, make_account, caplog
):
    account = await make_account("Unlucky")
    number = fresh_number()
    await store_number(couch, kazoo_number(number, owner=account.id))
    proxy.clear()
    proxy.inject(
        "respond", method="PUT", path_contains=f"/{quote(number, safe='')}", status=500, times=None
    )
    doc = routing_trunk([number])
    doc["servers"][0]["auth"] = {"auth_user": "pbx", "auth_password": "never-logged-secret"}
    with caplog.at_level(logging.INFO):
        reply = await call(faulty, "PUT", account.url(), data=doc, token=account.token)
    proxy.clear()
    assert reply.status == 201, reply.text
    stored = await couch.get_doc(account.db, reply.data["id"])
    assert number in stored["servers"][0]["DIDs"]
    assert "pvt_used_by" not in await number_doc(couch, number)
    failures = [r for r in caplog.records if r.name == "service.numbers.usage"]
    assert failures and failures[0].levelno == logging.WARNING
    assert failures[0].number == number and failures[0].connectivity_id == reply.data["id"]
    assert "never-logged-secret" not in caplog.text
    # What `ensure-numbers` does, in-process.
    summary = await NumberReconciler(couch).run(lambda _finding: None)
    assigned = [f for f in summary.findings if f.number == number]
    assert [f.action for f in assigned] == ["assigned"]
    assert (await number_doc(couch, number))["pvt_used_by"] == "trunkstore"
    assert (await copy_doc(couch, account.id, number))["pvt_used_by"] == "trunkstore"
