"""Who may act on which account's connectivity documents (§10.3)."""

from __future__ import annotations

from helpers import assert_kazoo_error, call


async def test_api_auth_issues_tokens(api, make_account):
    account = await make_account("Login")
    reply = await call(api, "PUT", "/v2/api_auth", data={"api_key": account.api_key})
    assert reply.status == 201
    assert reply.data["account_id"] == account.id
    assert reply.body["auth_token"].count(".") == 2
    unknown = await call(api, "PUT", "/v2/api_auth", data={"api_key": "0" * 64})
    assert_kazoo_error(unknown, 404, "bad_identifier")
    missing = await call(api, "PUT", "/v2/api_auth", data={})
    data = assert_kazoo_error(missing, 400, "validation error")
    assert "api_key" in data
    wrong_verb = await call(api, "GET", "/v2/api_auth")
    assert_kazoo_error(wrong_verb, 405, "invalid_method")


async def test_tree_access_rules(api, make_account):
    top = await make_account("Master")
    reseller = await make_account("Reseller", parent=top)
    customer_a = await make_account("Customer A", parent=reseller)
    customer_b = await make_account("Customer B", parent=reseller)
    allowed = [
        (customer_a, customer_a),  # self
        (reseller, customer_a),  # parent
        (top, customer_a),  # grandparent and superduper
        (top, reseller),
    ]
    denied = [
        (customer_a, customer_b),  # sibling
        (customer_a, reseller),  # descendant acting on its ancestor
        (reseller, top),
    ]
    for actor, target in allowed:
        reply = await call(api, "PUT", target.url(), data={"name": "x"}, token=actor.token)
        assert reply.status == 201, (actor.name, target.name)
        listed = await call(api, "GET", target.url(), token=actor.token)
        assert listed.status == 200
    for actor, target in denied:
        reply = await call(api, "GET", target.url(), token=actor.token)
        assert assert_kazoo_error(reply, 403, "forbidden") == {"message": "forbidden"}
        write = await call(api, "PUT", target.url(), data={"name": "x"}, token=actor.token)
        assert_kazoo_error(write, 403, "forbidden")


async def test_unrelated_reseller_is_denied(api, make_account):
    top = await make_account("Master")
    reseller_one = await make_account("Reseller 1", parent=top)
    reseller_two = await make_account("Reseller 2", parent=top)
    customer = await make_account("Customer of 2", parent=reseller_two)
    reply = await call(api, "GET", customer.url(), token=reseller_one.token)
    assert_kazoo_error(reply, 403, "forbidden")


async def test_write_records_the_authenticating_account(api, make_account, couch):
    top = await make_account("Master")
    customer = await make_account("Customer", parent=top)
    reply = await call(api, "PUT", customer.url(), data={"name": "by parent"}, token=top.token)
    stored = await couch.get_doc(customer.db, reply.data["id"])
    assert stored["pvt_account_id"] == customer.id
    assert stored["pvt_auth_account_id"] == top.id
