"""Every applicable row of KAZOO's error catalogue (§5.1), in KAZOO's envelope, in §1 order."""

from __future__ import annotations

import json
import time

from helpers import PBX_TRUNK, assert_kazoo_error, call, create_trunk
from instances import instance
from kazoo_tokens import mint, system_keys, unb64url

from service.kazoo.ids import ACCOUNTS_DB, account_db


async def test_bare_document_without_envelope(api, master):
    reply = await call(api, "PUT", master.url(), body={"name": "bare"}, token=master.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data == {
        "data": {
            "required": {"message": "Field is required but missing", "value": {"name": "bare"}}
        }
    }


async def test_malformed_json(api, master):
    reply = await call(api, "PUT", master.url(), raw='{"data": {"name": ', token=master.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data["json"]["invalid"]["target"] == "body"
    assert data["json"]["invalid"]["message"].startswith("truncated_json around")
    reply = await call(api, "PUT", master.url(), raw='{"data": nope}', token=master.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data["json"]["invalid"]["message"].startswith("invalid_json around")


async def test_malformed_body_wins_over_authentication(api, master):
    reply = await call(api, "PUT", master.url(), raw="{oops")
    assert_kazoo_error(reply, 400, "validation error")


async def test_data_of_wrong_type(api, master):
    reply = await call(api, "PUT", master.url(), body={"data": "text"}, token=master.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data["data"]["type"]["target"] == "object, array"
    reply = await call(api, "PUT", master.url(), body={"data": [1, 2]}, token=master.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data["data"]["type"]["target"] == "object"


async def test_non_json_bodies_are_400_not_500(api, master):
    for raw in ("[]", '"str"', "null", "NaN", '{"data": {"n": NaN}}', '{"data": {"n": 1e400}}'):
        reply = await call(api, "PUT", master.url(), raw=raw, token=master.token)
        assert_kazoo_error(reply, 400, "validation error")
    reply = await call(
        api, "PUT", master.url(), raw=b'{"data": {"name": "\xff"}}', token=master.token
    )
    assert_kazoo_error(reply, 400, "validation error")
    reply = await call(
        api, "PUT", master.url(), raw='{"data": {"name": "\\ud800"}}', token=master.token
    )
    assert_kazoo_error(reply, 400, "validation error")
    deep = '{"data": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    reply = await call(api, "PUT", master.url(), raw=deep, token=master.token)
    assert_kazoo_error(reply, 400, "validation error")


async def test_envelope_keys_are_normalised(api, master):
    reply = await call(
        api, "PUT", master.url(), body={"DATA": {"name": "upper"}}, token=master.token
    )
    assert reply.status == 201
    assert reply.data["name"] == "upper"


async def test_form_content_type_with_json_body_works(api, master):
    reply = await call(
        api,
        "PUT",
        master.url(),
        raw='{"data": {"name": "curl"}}',
        token=master.token,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 201
    assert reply.data["name"] == "curl"


async def test_unsupported_content_type_is_415(api, master):
    reply = await call(
        api,
        "PUT",
        master.url(),
        raw="name=plain",
        token=master.token,
        headers={"Content-Type": "text/plain"},
    )
    assert assert_kazoo_error(reply, 415, "unsupported_media_type") == {
        "message": "content type text/plain is not accepted",
        "cause": "text/plain",
    }
    assert (await call(api, "GET", master.url(), token=master.token)).data == []


async def test_payload_too_large(api, master):
    big = '{"data": {"blob": "' + "x" * 8_000_001 + '"}}'
    reply = await call(api, "PUT", master.url(), raw=big, token=master.token)
    data = assert_kazoo_error(reply, 413, "validation error")
    assert data == {
        "file": {
            "maxSize": {
                "message": "Payload or Files must not be more than 8000000 bytes",
                "target": 8000000,
            }
        }
    }


async def test_unknown_document(api, master):
    reply = await call(
        api, "GET", master.url("/0123456789abcdef0123456789abcdef"), token=master.token
    )
    assert assert_kazoo_error(reply, 404, "bad_identifier") == {
        "cause": "0123456789abcdef0123456789abcdef",
        "message": "bad identifier",
    }


async def test_account_id_errors(api, master):
    reply = await call(api, "GET", "/v2/accounts/short/connectivity", token=master.token)
    assert assert_kazoo_error(reply, 404, "bad identifier") == {
        "message": "invalid account_id 'short'"
    }
    reply = await call(api, "GET", "/v2/accounts//connectivity", token=master.token)
    assert assert_kazoo_error(reply, 404, "bad identifier") == {"message": "missing account_id"}
    unknown = "f" * 32
    reply = await call(api, "GET", f"/v2/accounts/{unknown}/connectivity", token=master.token)
    assert assert_kazoo_error(reply, 404, "bad_identifier") == {
        "cause": unknown,
        "message": "bad identifier",
    }


async def test_unknown_account_is_404_before_401(api):
    """KAZOO checks the account before authentication (§1 step 4, §14 #6)."""
    reply = await call(api, "GET", f"/v2/accounts/{'e' * 32}/connectivity")
    assert_kazoo_error(reply, 404, "bad_identifier")


async def test_unknown_paths(api, master):
    for path in (master.url("/id/extra"), f"/v2/accounts/{master.id}/nosuchmodule", "/v2/nothing"):
        reply = await call(api, "GET", path, token=master.token)
        assert assert_kazoo_error(reply, 404, "not_found") == {"message": "not found"}


async def test_methods_not_allowed(api, master):
    cases = [
        ("DELETE", master.url(), "GET, PUT"),
        ("POST", master.url(), "GET, PUT"),
        ("PATCH", master.url(), "GET, PUT"),
        ("PUT", master.url("/some-id"), "GET, POST, PATCH, DELETE"),
        ("HEAD", master.url("/some-id"), "GET, POST, PATCH, DELETE"),
    ]
    for method, path, allowed in cases:
        reply = await call(api, method, path, token=master.token)
        assert reply.status == 405, (method, path)
        assert reply.headers["Allow"] == allowed
        if method != "HEAD":
            data = assert_kazoo_error(reply, 405, "invalid_method")
            assert data == {"message": "method not allowed"}


async def test_unknown_method_is_405_not_501(api, master):
    # KAZOO says 501; no client input may produce a 5xx (§14).
    reply = await call(api, "TRACE", master.url(), token=master.token)
    assert assert_kazoo_error(reply, 405, "invalid_method") == {"message": "method not allowed"}
    assert reply.headers["Allow"] == "GET, PUT"


async def test_version_1_is_gone(api, master):
    reply = await call(api, "GET", f"/v1/accounts/{master.id}/connectivity", token=master.token)
    data = assert_kazoo_error(reply, 410, "gone")
    assert "version 2" in data["message"]


async def test_missing_and_bad_credentials(api, master):
    for token in (None, "not-a-token", master.token[:-4] + "AAAA", master.token + "x"):
        reply = await call(api, "GET", master.url(), token=token)
        data = assert_kazoo_error(reply, 401, "invalid_credentials")
        assert data == {"message": "invalid credentials"}
    reply = await call(api, "GET", master.url(), params={"auth_token": master.token})
    assert reply.status == 200
    reply = await call(
        api, "GET", master.url(), token=master.token, headers={"X-Auth-Account-ID": "x" * 32}
    )
    assert_kazoo_error(reply, 401, "invalid_credentials")


async def test_expired_token_is_rejected_early(api, master, couch):
    keys = await system_keys(couch)
    claims = json.loads(unb64url(master.token.split(".")[1]))
    claims["exp"] = int(time.time()) - 10
    expired = mint(keys.key, keys.kid, claims)
    reply = await call(api, "GET", master.url(), token=expired)
    assert assert_kazoo_error(reply, 401, "invalid credentials") == {}
    # Early authentication runs before path checks: even an unknown account says 401.
    reply = await call(api, "GET", f"/v2/accounts/{'d' * 32}/connectivity", token=expired)
    assert_kazoo_error(reply, 401, "invalid credentials")


async def test_conditional_requests(api, master):
    created = await call(api, "PUT", master.url(), data=PBX_TRUNK, token=master.token)
    doc_id, rev = created.data["id"], created.body["revision"]
    item = master.url(f"/{doc_id}")
    not_modified = await call(
        api, "GET", item, token=master.token, headers={"If-None-Match": f'"{rev}"'}
    )
    assert not_modified.status == 304
    assert not_modified.text == ""
    for method in ("POST", "PATCH", "DELETE"):
        stale = await call(
            api, method, item, data={}, token=master.token, headers={"If-Match": '"1-stale"'}
        )
        data = assert_kazoo_error(stale, 412, "precondition_failed")
        assert data == {"message": "precondition failed"}, method
    weak = await call(
        api, "PATCH", item, data={}, token=master.token, headers={"If-Match": f'W/"{rev}"'}
    )
    assert_kazoo_error(weak, 412, "precondition_failed")
    unchanged = await call(api, "GET", item, token=master.token)
    assert unchanged.body["revision"] == rev
    fresh = await call(
        api, "PATCH", item, data={"x": 1}, token=master.token, headers={"If-Match": f'"{rev}"'}
    )
    assert fresh.status == 200
    on_put = await call(
        api, "PUT", master.url(), data={}, token=master.token, headers={"If-Match": "*"}
    )
    assert_kazoo_error(on_put, 412, "precondition_failed")
    listing = await call(api, "GET", master.url(), token=master.token)
    assert listing.data == [doc_id]


async def test_cors_preflight_and_headers(api, master):
    reply = await call(
        api,
        "OPTIONS",
        master.url(),
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "PUT"},
    )
    assert reply.status == 200
    assert reply.text == ""
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["Access-Control-Allow-Methods"] == "OPTIONS, GET, PUT"
    assert "x-auth-token" in reply.headers["Access-Control-Allow-Headers"]
    no_cors = await call(api, "OPTIONS", master.url())
    assert_kazoo_error(no_cors, 405, "invalid_method")
    with_origin = await call(
        api, "GET", master.url(), token=master.token, headers={"Origin": "https://ui.example"}
    )
    assert with_origin.headers["Access-Control-Allow-Origin"] == "*"
    plain = await call(api, "GET", master.url(), token=master.token)
    assert "Access-Control-Allow-Origin" not in plain.headers
    error = await call(api, "GET", master.url("/missing"), token=master.token)
    assert error.headers["Access-Control-Allow-Origin"] == "*"


async def test_verb_tunnelling(api, master):
    reply = await call(
        api,
        "POST",
        master.url(),
        data={"name": "tunnelled"},
        token=master.token,
        params={"verb": "PUT"},
    )
    assert reply.status == 201
    doc_id = reply.data["id"]
    assert reply.data["name"] == "tunnelled"
    assert (await call(api, "GET", master.url(), token=master.token)).data == [doc_id]
    patched = await call(
        api,
        "POST",
        master.url(f"/{doc_id}"),
        data={"extra": 1},
        token=master.token,
        params={"verb": "PATCH"},
    )
    assert patched.status == 200
    assert patched.data["name"] == "tunnelled" and patched.data["extra"] == 1  # merged
    deleted = await call(
        api,
        "POST",
        master.url(f"/{doc_id}"),
        body={"data": {}, "verb": "DELETE"},
        token=master.token,
    )
    assert deleted.status == 200
    assert deleted.data["_read_only"] == {"deleted": True}
    gone = await call(api, "GET", master.url(f"/{doc_id}"), token=master.token)
    assert_kazoo_error(gone, 404, "bad_identifier")
    assert (await call(api, "GET", master.url(), token=master.token)).data == []


async def test_schema_errors_through_the_api(api, master):
    """The example of docs/kazoo-compatibility.md §5.2, end to end."""
    reply = await call(
        api,
        "PUT",
        master.url(),
        data={
            "servers": [{"options": {"delay": "soon"}}],
            "account": {"trunks": -1, "caller_id": {"cid_name": "x" * 36}},
        },
        token=master.token,
    )
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data == {
        "servers.0.auth": {
            "required": {"message": "Field is required but missing", "value": "auth"}
        },
        "servers.0.options.delay": {
            "type": {
                "message": "Value did not match type(s): integer",
                "target": "integer",
                "value": "soon",
            }
        },
        "account.trunks": {
            "minimum": {"message": "Value must be at least 0", "target": 0, "value": -1}
        },
        "account.caller_id.cid_name": {
            "maxLength": {
                "message": "String must not be more than 35 characters",
                "target": 35,
                "cause": "x" * 36,
                "value": "x" * 36,
            }
        },
    }


async def test_lenient_coercion_is_what_gets_stored(api, master, couch):
    reply = await call(
        api,
        "PUT",
        master.url(),
        data={
            "account": {"trunks": "4"},
            "servers": [{"auth": {}, "options": {"delay": "4.6", "enabled": "false"}}],
        },
        token=master.token,
    )
    assert reply.status == 201, reply.text
    stored = await couch.get_doc(master.db, reply.data["id"])
    assert stored["account"]["trunks"] == 4
    assert stored["servers"][0]["options"]["delay"] == 5
    assert stored["servers"][0]["options"]["enabled"] is False
    assert stored["servers"][0]["auth"] == {"auth_method": "password"}


async def test_pretty_print_and_jsonp(api, master):
    pretty = await call(
        api, "GET", master.url(), token=master.token, params={"pretty_print": "true"}
    )
    assert pretty.text.startswith("{\n")
    wrapped = await call(api, "GET", master.url(), token=master.token, params={"jsonp": "cb"})
    assert wrapped.text.startswith("cb({") and wrapped.text.endswith("});")
    assert wrapped.headers["Content-Type"].startswith("application/json")


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


# -- 406 and the accepted types --------------------------------------------------------


async def test_accept_headers_that_admit_json_or_csv_are_answered(api, master):
    await create_trunk(api, master)  # a listing with a row, so CSV is a 200 too
    for accept in (
        "application/json",
        "application/json; charset=utf-8",
        "*/*",
        "application/*",
        "application/x-json",
        "application/vnd.api+json",
        "text/html, application/xml;q=0.9, */*;q=0.8",  # a browser's
        "APPLICATION/JSON",
    ):
        reply = await call(api, "GET", master.url(), token=master.token, headers={"Accept": accept})
        assert reply.status == 200, accept
        assert reply.headers["Content-Type"] == "application/json", accept
    # Listings are offered as CSV too (cowboy picks it for these, §9).
    for accept in ("text/*", "text/csv", "text/comma-separated-values"):
        reply = await call(api, "GET", master.url(), token=master.token, headers={"Accept": accept})
        assert reply.status == 200, accept
        assert reply.headers["Content-Type"].startswith("text/csv"), accept
        assert reply.text.splitlines()[0] == '"ID"', accept


async def test_accept_headers_that_admit_neither_are_406(api, master):
    for accept in ("application/xml", "text/html", "image/png, text/plain", "application/jsonx"):
        reply = await call(api, "GET", master.url(), token=master.token, headers={"Accept": accept})
        assert assert_kazoo_error(reply, 406, "not_acceptable") == {
            "message": "no acceptable content type"
        }, accept
    # Also for a write, and nothing is written.
    refused = await call(
        api,
        "PUT",
        master.url(),
        data={"name": "x"},
        token=master.token,
        headers={"Accept": "application/xml"},
    )
    assert_kazoo_error(refused, 406, "not_acceptable")
    assert (await call(api, "GET", master.url(), token=master.token)).data == []


# -- the target account -----------------------------------------------------------------


async def test_a_target_doc_that_is_not_an_account_is_an_unknown_account(
    api, couch, couch_url, master
):
    """An id whose account database holds a doc of another type under that id (e.g. a
    user doc restored by hand) is no account."""
    child = await call(
        api,
        "PUT",
        f"/v2/accounts/{master.id}",
        data={"name": "Not an account"},
        token=master.token,
    )
    child_id = child.data["id"]
    for db in (account_db(child_id), ACCOUNTS_DB):
        stored = await couch.get_doc(db, child_id)
        await couch.put_doc(db, {**stored, "pvt_type": "user"})
    async with instance(couch_url) as fresh:  # its account cache never saw the account
        reply = await call(
            fresh, "GET", f"/v2/accounts/{child_id}/connectivity", token=master.token
        )
    assert assert_kazoo_error(reply, 404, "bad_identifier") == {
        "cause": child_id,
        "message": "bad identifier",
    }


async def test_a_matching_x_auth_account_id_is_accepted(api, master, reseller):
    same = await call(
        api, "GET", master.url(), token=master.token, headers={"X-Auth-Account-ID": master.id}
    )
    assert same.status == 200, same.text
    # It names the token's account, not the target: acting on a child with it works…
    child = await call(
        api, "GET", reseller.url(), token=master.token, headers={"X-Auth-Account-ID": master.id}
    )
    assert child.status == 200, child.text
    # …and naming the target instead of the token's account does not.
    other = await call(
        api, "GET", reseller.url(), token=master.token, headers={"X-Auth-Account-ID": reseller.id}
    )
    assert_kazoo_error(other, 401, "invalid_credentials")
