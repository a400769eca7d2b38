"""The listing reads `connectivity/listing`, and lists exactly what KAZOO's view lists.

`_design/connectivity` (couch/design/account/connectivity.json) is KAZOO's
`trunkstore/crossbar_listing` without the `{name, servers}` values (issue #8): a client
must see the same ids, in the same order, page for page, as KAZOO would list them.
"""

from __future__ import annotations

from helpers import call

from service.couchdb import CouchClient, quote_db
from service.kazoo_ids import new_id


async def kazoo_view_ids(couch: CouchClient, db: str, *, descending: bool) -> list[str]:
    result = await couch.view(
        db, "trunkstore", "crossbar_listing", reduce=False, descending=descending
    )
    return [row["id"] for row in result["rows"]]


async def test_listing_matches_kazoos_view(api, couch, master):
    token = master.token
    for index in range(12):
        reply = await call(api, "PUT", master.url(), data={"name": f"t{index}"}, token=token)
        assert reply.status == 201
    created = (await call(api, "GET", master.url(), params={"paginate": "false"}, token=token)).data
    # Soft- and hard-deleted trunks, and docs of other kinds in the same database.
    await call(api, "DELETE", master.url(f"/{created[0]}"), token=token)
    await call(
        api,
        "DELETE",
        master.url(f"/{created[1]}"),
        params={"should_soft_delete": "false"},
        token=token,
    )
    others = [
        {"_id": new_id(), "pvt_type": "device", "name": "not a trunk"},
        {"_id": new_id(), "name": "no type"},
        {"_id": new_id(), "pvt_type": "sys_info", "pvt_deleted": True, "name": "deleted"},
        {"_id": new_id(), "pvt_type": "sys_info", "name": "written by KAZOO"},
    ]
    status, _ = await couch.request(
        "POST", f"{quote_db(master.db)}/_bulk_docs", body={"docs": others}
    )
    assert status == 201

    for descending, params in ((True, {}), (False, {"ascending": "true"})):
        expected = await kazoo_view_ids(couch, master.db, descending=descending)
        everything = await call(
            api, "GET", master.url(), params={**params, "paginate": "false"}, token=token
        )
        assert everything.data == expected
        paged: list[str] = []
        start: dict[str, str] = {}
        while True:
            page = await call(
                api,
                "GET",
                master.url(),
                params={**params, **start, "page_size": "4"},
                token=token,
            )
            paged.extend(page.data)
            if "next_start_key" not in page.body:
                break
            start = {"start_key": page.body["next_start_key"]}
        assert paged == expected
    assert len(expected) == 11  # 12 created, 2 deleted, 1 written by KAZOO


async def test_listing_installs_its_view_where_kazoo_wrote_the_database(api, couch, master):
    reply = await call(api, "PUT", master.url(), data={"name": "trunk"}, token=master.token)
    ddoc = await couch.get_doc(master.db, "_design/connectivity")
    # A database replicated from KAZOO has KAZOO's design docs, not ours.
    await couch.delete_doc(master.db, ddoc["_id"], ddoc["_rev"])

    listed = await call(api, "GET", master.url(), token=master.token)

    assert listed.status == 200
    assert listed.data == [reply.data["id"]]
    assert await couch.get_doc(master.db, "_design/connectivity")
