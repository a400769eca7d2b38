"""Listing: ids only, KAZOO's ordering, paging and opaque start keys (§9)."""

from __future__ import annotations

from helpers import assert_kazoo_error, call, create_trunk

from service.kazoo.start_keys import encode_start_key


async def _fill(api, account, count: int) -> list[str]:
    ids = [f"doc-{index:03d}" for index in range(count)]
    for doc_id in ids:
        await create_trunk(api, account, {"id": doc_id})
    return ids


async def test_paging_descending_by_default(api, master):
    ids = await _fill(api, master, 7)
    first = await call(api, "GET", master.url(), token=master.token, params={"page_size": "3"})
    assert first.data == ["doc-006", "doc-005", "doc-004"]
    assert first.body["page_size"] == 3
    assert first.body["next_start_key"] == encode_start_key("doc-003")
    assert "start_key" not in first.body
    assert "revision" not in first.body
    second = await call(
        api,
        "GET",
        master.url(),
        token=master.token,
        params={"page_size": "3", "start_key": first.body["next_start_key"]},
    )
    assert second.data == ["doc-003", "doc-002", "doc-001"]
    assert second.body["start_key"] == first.body["next_start_key"]
    last = await call(
        api,
        "GET",
        master.url(),
        token=master.token,
        params={"page_size": "3", "start_key": second.body["next_start_key"]},
    )
    assert last.data == ["doc-000"]
    assert "next_start_key" not in last.body
    everything = first.data + second.data + last.data
    assert sorted(everything) == ids


async def test_paging_ascending(api, master):
    await _fill(api, master, 5)
    reply = await call(
        api, "GET", master.url(), token=master.token, params={"ascending": "true", "page_size": "2"}
    )
    assert reply.data == ["doc-000", "doc-001"]
    nxt = await call(
        api,
        "GET",
        master.url(),
        token=master.token,
        params={"ascending": "true", "page_size": "2", "start_key": reply.body["next_start_key"]},
    )
    assert nxt.data == ["doc-002", "doc-003"]
    # A plain id works as a start key too (KAZOO falls back to the raw value).
    raw = await call(
        api,
        "GET",
        master.url(),
        token=master.token,
        params={"ascending": "true", "start_key": "doc-003"},
    )
    assert raw.data == ["doc-003", "doc-004"]


async def test_a_raw_start_key_is_echoed_in_kazoos_encoded_form(api, master):
    """KAZOO decodes the start key it is given and encodes it again for the envelope
    (§9): a plain id and its encoded form give the same answer, echo included."""
    await _fill(api, master, 4)
    pages = []
    for given in ("doc-002", encode_start_key("doc-002")):
        params = {"page_size": "2", "start_key": given}
        pages.append(await call(api, "GET", master.url(), token=master.token, params=params))
    raw, encoded = pages
    assert raw.data == encoded.data == ["doc-002", "doc-001"]
    assert raw.body["start_key"] == encoded.body["start_key"] == encode_start_key("doc-002")
    assert raw.body["next_start_key"] == encode_start_key("doc-000")


async def test_descending_false_alone_still_lists_descending(api, master):
    """KAZOO's code, not its docs (§14 #14)."""
    await _fill(api, master, 3)
    reply = await call(api, "GET", master.url(), token=master.token, params={"descending": "false"})
    assert reply.data == ["doc-002", "doc-001", "doc-000"]
    bare = await call(api, "GET", master.url() + "?ascending", token=master.token)
    assert bare.data == ["doc-000", "doc-001", "doc-002"]


async def test_paginate_false_returns_everything_without_paging_keys(api, master):
    ids = await _fill(api, master, 120)
    reply = await call(api, "GET", master.url(), token=master.token, params={"paginate": "false"})
    assert reply.data == sorted(ids, reverse=True)
    for key in ("page_size", "start_key", "next_start_key"):
        assert key not in reply.body
    default = await call(api, "GET", master.url(), token=master.token)
    assert len(default.data) == 50
    assert default.body["page_size"] == 50


async def test_soft_deleted_documents_are_not_listed(api, master):
    await _fill(api, master, 3)
    await call(api, "DELETE", master.url("/doc-001"), token=master.token)
    reply = await call(api, "GET", master.url(), token=master.token)
    assert reply.data == ["doc-002", "doc-000"]


async def test_page_size_errors(api, master):
    bad = await call(api, "GET", master.url(), token=master.token, params={"page_size": "lots"})
    assert assert_kazoo_error(bad, 404, "faulty_request") == {"message": "invalid page size"}
    zero = await call(api, "GET", master.url(), token=master.token, params={"page_size": "0"})
    assert assert_kazoo_error(zero, 404, "faulty_request") == {
        "message": "page size must be at least 1"
    }


async def test_page_size_beyond_couchdbs_view_limit_lists_everything(api, master):
    # KAZOO has no maximum page size (§9); Apache CouchDB refuses a view limit above
    # 268435456, which must not surface as a datastore fault.
    ids = await _fill(api, master, 3)
    huge = str(10**30)
    reply = await call(api, "GET", master.url(), token=master.token, params={"page_size": huge})
    assert reply.status == 200, reply.text
    assert reply.data == sorted(ids, reverse=True)
    assert reply.body["page_size"] == 3
    assert "next_start_key" not in reply.body


async def test_missing_design_document_is_reinstalled(api, master, couch):
    ddoc = await couch.get_doc(master.db, "_design/trunkstore")
    await couch.delete_doc(master.db, "_design/trunkstore", ddoc["_rev"])
    await _fill(api, master, 2)
    reply = await call(api, "GET", master.url(), token=master.token)
    assert reply.data == ["doc-001", "doc-000"]


async def test_a_start_key_past_the_end_key_is_an_empty_page(api, master):
    await call(api, "PUT", master.url(), data={"name": "A trunk"}, token=master.token)
    for params in (
        {"start_key": "a", "end_key": "z"},  # descending by default: "a" is below "z"
        {"start_key": "z", "end_key": "a", "ascending": "true"},
        {"start_key": "a", "end_key": "z", "paginate": "false"},
    ):
        reply = await call(api, "GET", master.url(), params=params, token=master.token)
        assert reply.status == 200, (params, reply.text)
        assert reply.data == []
