"""Faults schemathesis found in the service, each fixed and pinned here."""

from __future__ import annotations

from helpers import PBX_TRUNK, assert_kazoo_error, call


async def test_start_key_past_end_key_is_an_empty_page_not_a_503(api, master):
    await call(api, "PUT", master.url(), data={"name": "A trunk"}, token=master.token)
    for params in (
        {"start_key": "a", "end_key": "z"},  # descending by default: "a" is below "z"
        {"start_key": "z", "end_key": "a", "ascending": "true"},
        {"start_key": "a", "end_key": "z", "paginate": "false"},
    ):
        reply = await call(api, "GET", master.url(), params=params, token=master.token)
        assert reply.status == 200, (params, reply.text)
        assert reply.data == []


async def test_invalid_put_is_400_even_with_an_if_match(api, master):
    # Crossbar validates before it evaluates preconditions (§1 steps 8-9).
    reply = await call(
        api,
        "PUT",
        master.url(),
        data={"servers": {}},
        token=master.token,
        headers={"If-Match": '"1-abc"'},
    )
    assert_kazoo_error(reply, 400, "validation error")


async def test_invalid_patch_is_400_even_with_a_stale_if_match(api, master):
    created = await call(api, "PUT", master.url(), data=PBX_TRUNK, token=master.token)
    doc_id = created.data["id"]
    reply = await call(
        api,
        "PATCH",
        master.url(f"/{doc_id}"),
        data={"account": {"trunks": -1}},
        token=master.token,
        headers={"If-Match": '"1-stale"'},
    )
    data = assert_kazoo_error(reply, 400, "validation error")
    assert "account.trunks" in data
    # A valid patch with the stale tag is still refused by the precondition.
    reply = await call(
        api,
        "PATCH",
        master.url(f"/{doc_id}"),
        data={"name": "x"},
        token=master.token,
        headers={"If-Match": '"1-stale"'},
    )
    assert_kazoo_error(reply, 412, "precondition_failed")


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


async def test_a_number_too_short_for_a_database_is_not_reconcilable(api, master):
    reply = await call(
        api, "PUT", f"/v2/accounts/{master.id}/phone_numbers/00", data={}, token=master.token
    )
    assert reply.status == 404, reply.text
    assert reply.body["status"] == "error"
