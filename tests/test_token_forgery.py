"""Tokens that must not pass (§10.2): each is a 401 (never a 5xx), and none makes the
service write a key document, even for a `kid` it has never seen.

Also `POST /v2/auth/tokeninfo` (Monster UI's re-login, MUI §1) and the revocations that
follow a new identity secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from cryptography.hazmat.primitives import serialization
from helpers import assert_kazoo_error, call
from instances import until
from kazoo_tokens import (
    b64url,
    compact,
    identity_sig,
    mint,
    new_rsa_key,
    plant_user,
    rand_hex,
    system_keys,
    unb64url,
    user_token,
)


def _claims(token: str) -> dict:
    return json.loads(unb64url(token.split(".")[1]))


def _with_claims(token: str, **changes: object) -> str:
    """The same header and signature over changed claims: a tampered token."""
    head, _payload, signature = token.split(".")
    return f"{head}.{b64url(compact({**_claims(token), **changes}))}.{signature}"


async def _forgeries(couch, master, customer, outsider) -> dict[str, str]:
    keys = await system_keys(couch)
    claims = _claims(customer.token)
    public_pem = keys.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_head = b64url(compact({"alg": "HS256", "typ": "JWT", "kid": keys.kid}))
    hs_body = b64url(compact(claims))
    hs_sig = hmac.new(public_pem, f"{hs_head}.{hs_body}".encode(), hashlib.sha256).digest()
    none_head = b64url(compact({"alg": "none", "typ": "JWT", "kid": keys.kid}))
    customer_doc = await couch.get_doc(customer.db, customer.id)
    wrong_secret = identity_sig(rand_hex(), keys.system_secret, customer.id)
    sig, payload = customer.token.split(".")[2], customer.token.split(".")[1]
    head = customer.token.split(".")[0]
    return {
        "tampered account": _with_claims(customer.token, account_id=master.id),
        "tampered expiry": _with_claims(customer.token, exp=claims["exp"] + 86400),
        "tampered signature": f"{head}.{payload}.{sig[:-6]}AAAAAA",
        "alg none": f"{none_head}.{b64url(compact(claims))}.",
        "HS256 with the public key": f"{hs_head}.{hs_body}.{b64url(hs_sig)}",
        "RS384 header on an RS256 signature": mint(
            keys.key, keys.kid, claims, header={"alg": "RS384", "typ": "JWT", "kid": keys.kid}
        ),
        "another key, the system kid": mint(new_rsa_key(), keys.kid, claims),
        "unknown kid": mint(keys.key, "f" * 32, claims),
        "kid of a CouchDB doc": mint(keys.key, "_design/x", claims),
        "no kid": mint(keys.key, "", claims, header={"alg": "RS256", "typ": "JWT"}),
        "wrong identity secret": mint(keys.key, keys.kid, {**claims, "identity_sig": wrong_secret}),
        "identity of another account": mint(
            keys.key, keys.kid, {**claims, "account_id": outsider.id}
        ),
        "user of another account": mint(keys.key, keys.kid, {**claims, "owner_id": rand_hex()}),
        "other issuer": mint(keys.key, keys.kid, {**claims, "iss": "https://evil.example"}),
        "no account": mint(
            keys.key, keys.kid, {k: v for k, v in claims.items() if k != "account_id"}
        ),
        "account id of a CouchDB doc": mint(keys.key, keys.kid, {**claims, "account_id": "_" * 32}),
        "masquerade outside the tree": mint(
            keys.key,
            keys.kid,
            {**claims, "as": {"account_id": outsider.id, "owner_id": rand_hex()}},
        ),
        "masquerade as itself": mint(
            keys.key,
            keys.kid,
            {**claims, "as": {"account_id": customer.id, "owner_id": rand_hex()}},
        ),
        "masquerade to a CouchDB doc": mint(
            keys.key,
            keys.kid,
            {**claims, "as": {"account_id": "_design/" + "x" * 24, "owner_id": "u"}},
        ),
        "two parts": ".".join(customer.token.split(".")[:2]),
        "four parts": customer.token + ".x",
        "not base64": "e30.%%%.e30",
        "header not JSON": f"{b64url(b'nope')}.{payload}.{sig}",
        "claims not an object": mint(keys.key, keys.kid, [1, 2]),  # type: ignore[arg-type]
        "string exp": mint(keys.key, keys.kid, {**claims, "exp": "never"}),
        "the secret itself as the signature": mint(
            keys.key,
            keys.kid,
            {**claims, "identity_sig": customer_doc["pvt_signature_secret"]},
        ),
    }


async def test_forged_tokens_are_401_and_write_no_key(api, couch, master, customer, make_account):
    outsider = await make_account("Outsider")
    before = await couch.all_docs("system_auth")
    forgeries = await _forgeries(couch, master, customer, outsider)
    wrong = []
    for name, token in forgeries.items():
        for method, path in (("GET", customer.url()), ("GET", f"/v2/accounts/{customer.id}")):
            reply = await call(api, method, path, token=token)
            if reply.status != 401 or reply.body.get("error") != "401":
                wrong.append(f"{name}: {method} {path} -> {reply.status}")
        if name.startswith("masquerade"):
            # tokeninfo reports what the token says, `as` aside (crossbar_auth's check).
            continue
        info = await call(api, "POST", "/v2/auth/tokeninfo", data={"token": token})
        if info.status != 401:
            wrong.append(f"{name}: tokeninfo -> {info.status}")
    for odd in ("é.é.é", "\u2028.x.y", "a" * 4000 + ".b.c"):
        reply = await call(api, "GET", customer.url(), params={"auth_token": odd})
        if reply.status != 401:
            wrong.append(f"{odd[:10]!r} as ?auth_token= -> {reply.status}")
    assert wrong == []
    after = await couch.all_docs("system_auth")
    assert [row["id"] for row in after["rows"]] == [row["id"] for row in before["rows"]]
    # The genuine token still works: nothing above spoiled it.
    assert (await call(api, "GET", customer.url(), token=customer.token)).status == 200


async def test_an_expired_token_is_401_before_anything_else(api, couch, customer):
    keys = await system_keys(couch)
    expired = mint(keys.key, keys.kid, {**_claims(customer.token), "exp": int(time.time()) - 1})
    for path in (customer.url(), f"/v2/accounts/{'0' * 32}/connectivity", "/v2/nowhere"):
        reply = await call(api, "GET", path, token=expired)
        assert assert_kazoo_error(reply, 401, "invalid credentials") == {}


async def test_masquerading_as_a_descendant(api, couch, master, reseller, customer):
    """`as` moves the caller below its own account; the tree rule then applies to that."""
    keys = await system_keys(couch)
    user = await plant_user(couch, customer.id, username="masked")
    account = await couch.get_doc(master.db, master.id)
    token = mint(
        keys.key,
        keys.kid,
        {
            **_claims(master.token),
            "as": {"account_id": customer.id, "owner_id": user["_id"]},
            "identity_sig": identity_sig(
                account["pvt_signature_secret"], keys.system_secret, master.id
            ),
        },
    )
    described = await call(api, "GET", "/v2/token_auth", token=token)
    assert (described.data["account_id"], described.data["owner_id"]) == (customer.id, user["_id"])
    assert (await call(api, "GET", customer.url(), token=token)).status == 200
    # Acting as the customer: its parent is out of reach, whoever signed the token.
    reply = await call(api, "GET", reseller.url(), token=token)
    assert_kazoo_error(reply, 403, "forbidden")


async def test_an_expired_trial_account_is_refused(api, couch, customer):
    for db in (customer.db, "accounts"):  # both copies, as KAZOO's kzd_accounts:update
        stored = await couch.get_doc(db, customer.id)
        stored["pvt_trial_expires"] = 63_700_000_000  # 2018, Gregorian seconds
        await couch.put_doc(db, stored)

    async def refused() -> bool:
        return (await call(api, "GET", customer.url(), token=customer.token)).status == 400

    await until(refused, "the account cache to see the expired trial")
    reply = await call(api, "GET", customer.url(), token=customer.token)
    data = assert_kazoo_error(reply, 400, "validation error")
    assert data == {"account": {"expired": {"message": "account expired", "cause": 63_700_000_000}}}


async def test_tokeninfo(api, couch, customer):
    keys = await system_keys(couch)
    user = await plant_user(couch, customer.id, username="reloader")
    account = await couch.get_doc(customer.db, customer.id)
    token = user_token(keys, account, user)
    for method, kwargs in (
        ("POST", {"data": {"token": token}}),
        ("GET", {"params": {"token": token}}),
    ):
        reply = await call(api, method, "/v2/auth/tokeninfo", **kwargs)
        assert reply.status == 200, reply.text
        assert reply.headers["Content-Type"].split(";")[0] == "application/json"
        assert reply.data["account_id"] == customer.id
        assert reply.data["owner_id"] == user["_id"]
        assert reply.body["auth_token"] == token
    missing = await call(api, "POST", "/v2/auth/tokeninfo", data={})
    assert_kazoo_error(missing, 404, "missing token in request")
    missing = await call(api, "GET", "/v2/auth/tokeninfo")
    assert_kazoo_error(missing, 404, "missing token in params")
    bad = await call(api, "POST", "/v2/auth/tokeninfo", data={"token": "a.b.c"})
    assert_kazoo_error(bad, 401, "invalid_credentials")


async def test_a_new_identity_secret_revokes_that_identitys_tokens(api, couch, customer):
    """KAZOO's reset_identity_secret: the user's tokens stop, the account's do not."""
    keys = await system_keys(couch)
    user = await plant_user(couch, customer.id, username="rotating")
    account = await couch.get_doc(customer.db, customer.id)
    token = user_token(keys, account, user)
    assert (await call(api, "GET", customer.url(), token=token)).status == 200
    user["pvt_signature_secret"] = rand_hex()
    await couch.put_doc(customer.db, user)

    async def refused() -> bool:
        return (await call(api, "GET", customer.url(), token=token)).status == 401

    await until(refused, "the user's new secret to be seen")
    assert (await call(api, "GET", customer.url(), token=customer.token)).status == 200
    # A token for the new secret works.
    fresh = user_token(keys, account, {**user, "_rev": None})
    assert (await call(api, "GET", customer.url(), token=fresh)).status == 200


async def test_identity_secret_reset_revokes_that_identity(api, couch, reseller, customer):
    """`PATCH …/auth/identity_secret`: the account's tokens (or one user's) stop."""
    keys = await system_keys(couch)
    user = await plant_user(couch, customer.id, username="resetme")
    account = await couch.get_doc(customer.db, customer.id)
    as_user = user_token(keys, account, user)
    path = f"/v2/accounts/{customer.id}/auth/identity_secret"
    reply = await call(api, "PATCH", path, data={"owner_id": user["_id"]}, token=reseller.token)
    assert reply.status == 200, reply.text
    assert_kazoo_error(
        await call(api, "GET", customer.url(), token=as_user), 401, "invalid_credentials"
    )
    assert (await call(api, "GET", customer.url(), token=customer.token)).status == 200
    # The customer may not reset its parent's; nor name a user it does not have.
    up = f"/v2/accounts/{reseller.id}/auth/identity_secret"
    assert_kazoo_error(
        await call(api, "PATCH", up, data={}, token=customer.token), 403, "forbidden"
    )
    missing = await call(api, "PATCH", path, data={"owner_id": rand_hex()}, token=customer.token)
    assert_kazoo_error(missing, 404, "bad_identifier")
    # The account's own: its api_auth tokens stop, wherever they were issued.
    reply = await call(api, "PATCH", path, data={}, token=reseller.token)
    assert reply.status == 200
    assert_kazoo_error(
        await call(api, "GET", customer.url(), token=customer.token), 401, "invalid_credentials"
    )
    assert (await call(api, "GET", customer.url(), token=reseller.token)).status == 200
