"""The reseller security suite: every token, target, endpoint and verb.

A tree master → reseller A → customers A1, A2, plus reseller B → customer B1 as an
unrelated tree, a deleted account and an unknown one. The tokens: each account's own
(api_auth), a KAZOO user login's for each, and KAZOO `as` tokens masquerading below the
signer (allowed as that account) or elsewhere (refused, 401). Each attempt is expected to
be allowed exactly when the account the token acts as is the target, one of its
ancestors, or a superduper admin (§10.3). Writes carry a precondition that cannot hold
(If-Match on a stale revision), so an attempt that passes authorization answers 412 and changes
nothing, while a denied one answers 403: the matrix tests authorization without side
effects. The closing figure is printed at the end of the pytest run.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass

from helpers import assert_kazoo_error, call
from instances import instance
from kazoo_tokens import (
    api_token,
    identity_sig,
    mint,
    plant_user,
    system_keys,
    unb64url,
    user_token,
)

STALE = {"If-Match": '"1-00000000000000000000000000000000"'}
CREATE_GUARD = {"If-Match": "*"}

SECURITY_FIGURES: dict[str, int] = {"attempts": 0, "wrongly_allowed": 0, "wrongly_denied": 0}


@dataclass(frozen=True)
class Attempt:
    method: str
    path: str
    headers: dict[str, str]
    # Status when authorization passes (412 for the guarded writes).
    ok_status: int
    # A valid body, so that validation (which precedes preconditions, §1) passes.
    data: dict[str, str] | None = None


def endpoints(account_id: str, doc_id: str) -> list[Attempt]:
    base = f"/v2/accounts/{account_id}"
    conn = f"{base}/connectivity"
    return [
        Attempt("GET", base, {}, 200),
        Attempt("POST", base, STALE, 412, {"name": "renamed"}),
        Attempt("PATCH", base, STALE, 412),
        Attempt("DELETE", base, STALE, 412),
        Attempt("PUT", base, CREATE_GUARD, 412, {"name": "child"}),
        Attempt("GET", f"{base}/children", {}, 200),
        Attempt("GET", f"{base}/descendants", {}, 200),
        Attempt("GET", f"{base}/api_key", {}, 200),
        Attempt("PUT", f"{base}/api_key", STALE, 412),
        Attempt("GET", conn, {}, 200),
        Attempt("PUT", conn, CREATE_GUARD, 412),
        Attempt("GET", f"{conn}/{doc_id}", {}, 200),
        Attempt("POST", f"{conn}/{doc_id}", STALE, 412),
        Attempt("PATCH", f"{conn}/{doc_id}", STALE, 412),
        Attempt("DELETE", f"{conn}/{doc_id}", STALE, 412),
        Attempt("GET", f"{base}/phone_numbers", {}, 200),
    ]


def may_act(actor, target) -> bool:
    return (
        actor.id == target.id
        or actor.id in target.doc.get("pvt_tree", [])
        or actor.doc.get("pvt_superduper_admin") is True
    )


@dataclass(frozen=True)
class Actor:
    name: str
    token: str
    # The account the token acts as; None when authentication must fail (401).
    acts_as: object | None


async def kazoo_actors(couch, live, deleted, tree) -> list[Actor]:
    """Tokens a KAZOO node issues: a user login for every account (and for the deleted
    one), and `as` tokens, masquerading below the signer or (refused) outside it."""
    keys = await system_keys(couch)
    actors = []
    for account in [*live, deleted]:
        user = await plant_user(couch, account.id, username=f"user-{account.id[:6]}")
        stored = await couch.get_doc(account.db, account.id)
        token = user_token(keys, stored, user)
        actors.append(Actor(f"{account.name} user", token, None if account is deleted else account))
    for signer, target in tree:
        stored = await couch.get_doc(signer.db, signer.id)
        user = await plant_user(couch, target.id, username=f"as-{signer.id[:6]}")
        claims = {
            "iss": "kazoo",
            "identity_sig": identity_sig(
                stored["pvt_signature_secret"], keys.system_secret, signer.id
            ),
            "account_id": signer.id,
            "as": {"account_id": target.id, "owner_id": user["_id"]},
            "method": "cb_api_auth",
            "exp": int(time.time()) + 3600,
        }
        # Only a descendant of the signer can be masqueraded as.
        below = signer.id in target.doc.get("pvt_tree", [])
        name = f"{signer.name} as {target.name}"
        actors.append(Actor(name, mint(keys.key, keys.kid, claims), target if below else None))
    return actors


async def test_every_token_target_endpoint_verb(api, couch, make_account):
    master = await make_account("Master")
    reseller_a = await make_account("Reseller A", parent=master)
    customer_a1 = await make_account("Customer A1", parent=reseller_a)
    customer_a2 = await make_account("Customer A2", parent=reseller_a)
    reseller_b = await make_account("Reseller B", parent=master)
    customer_b1 = await make_account("Customer B1", parent=reseller_b)
    deleted = await make_account("Deleted", parent=reseller_b)
    await call(api, "DELETE", f"/v2/accounts/{deleted.id}", token=master.token)
    live = [master, reseller_a, customer_a1, customer_a2, reseller_b, customer_b1]
    docs = {}
    for account in live:
        created = await call(api, "PUT", account.url(), data={"name": "t"}, token=account.token)
        docs[account.id] = created.data["id"]
    # Account tokens from api_auth, then KAZOO's user and `as` tokens: the user's token
    # signs its own identity, but the tree rule is the account's.
    masquerades = [
        (master, customer_a1),
        (reseller_a, customer_a2),
        (reseller_a, customer_b1),  # another reseller's customer: refused
        (customer_a1, reseller_a),  # upwards: refused
    ]
    actors = [Actor(a.name, a.token, a) for a in live]
    actors.append(Actor(deleted.name, deleted.token, None))
    actors += await kazoo_actors(couch, live, deleted, masquerades)
    unknown_id = "0" * 32
    wrong: list[str] = []
    attempts = 0
    decisions: Counter[int] = Counter()
    for actor in actors:
        for target in [*live, deleted, None]:
            target_id = target.id if target else unknown_id
            for attempt in endpoints(target_id, docs.get(target_id, "nodoc")):
                reply = await call(
                    api,
                    attempt.method,
                    attempt.path,
                    token=actor.token,
                    headers=attempt.headers,
                    data=attempt.data,
                )
                attempts += 1
                decisions[reply.status] += 1
                if target is None or target is deleted:
                    expected = 404  # the account check comes before authentication (§1)
                elif actor.acts_as is None:
                    expected = 401
                elif not may_act(actor.acts_as, target):
                    expected = 403
                elif (
                    attempt.method == "DELETE"
                    and target is master
                    and "connectivity" not in attempt.path
                ):
                    expected = 405  # the master account is never deleted
                else:
                    expected = attempt.ok_status
                if reply.status != expected:
                    allowed_now = reply.status < 400 or reply.status in (405, 412)
                    kind = (
                        "wrongly_allowed"
                        if allowed_now and expected in (401, 403, 404)
                        else "wrongly_denied"
                    )
                    SECURITY_FIGURES[kind] += 1
                    got = f"{attempt.method} {attempt.path} -> {reply.status}"
                    wrong.append(f"{actor.name}: {got}, want {expected}")
    SECURITY_FIGURES["attempts"] += attempts
    assert wrong == []
    # Counted from the tree, not from `may_act`: of the 6 live targets the master may act
    # on 6, reseller A on 3, reseller B on 2 (its third customer is deleted), a customer
    # on itself. Tokens acting as no one (the deleted account's, its user's, the two
    # masquerades outside the signer's tree) are 401 on every live target; the deleted
    # and the unknown account are 404 for everyone.
    refused = {master.id: 0, reseller_a.id: 3, reseller_b.id: 4}
    refused |= {customer.id: 5 for customer in (customer_a1, customer_a2, customer_b1)}
    acting = [actor.acts_as for actor in actors if actor.acts_as is not None]
    assert len(actors) == 18 and len(acting) == 14  # 6 + 6 own tokens, 2 masquerades
    per_target = len(endpoints(master.id, ""))
    assert decisions[403] == sum(refused[account.id] for account in acting) * per_target
    assert decisions[401] == (len(actors) - len(acting)) * len(live) * per_target
    assert decisions[404] == len(actors) * 2 * per_target


async def test_a_token_past_its_exp_is_refused(api, couch, make_account):
    """Time is driven, not waited for: the account's own token, signed again with its
    `exp` a minute in the past, is refused; the token as issued still works."""
    account = await make_account("Expiring")
    keys = await system_keys(couch)
    claims = json.loads(unb64url(account.token.split(".")[1]))
    expired = mint(keys.key, keys.kid, {**claims, "exp": int(time.time()) - 60})
    reply = await call(api, "GET", account.url(), token=expired)
    assert assert_kazoo_error(reply, 401, "invalid credentials") == {}
    assert (await call(api, "GET", account.url(), token=account.token)).status == 200


async def test_token_description_and_revocation_across_instances(
    api, couch, couch_url, make_account
):
    account = await make_account("Revoker")
    described = await call(api, "GET", "/v2/token_auth", token=account.token)
    assert described.status == 200
    assert described.data["account_id"] == account.id
    assert described.data["expires_at"] > time.time()
    assert described.data["method"] == "cb_api_auth"
    # Two logins in the same second get the same token (KAZOO's have no id either): the
    # other token is one a KAZOO node issued for the account, with another lifetime.
    stored = await couch.get_doc(account.db, account.id)
    second_token = api_token(await system_keys(couch), stored, ttl=1800)
    async with instance(couch_url, revocation_cache_seconds=0) as other:
        assert (await call(other, "GET", account.url(), token=account.token)).status == 200
        revoked = await call(api, "DELETE", "/v2/token_auth", token=account.token)
        assert revoked.status == 200
        for client in (api, other):
            reply = await call(client, "GET", account.url(), token=account.token)
            assert_kazoo_error(reply, 401, "invalid_credentials")
        # Only that token: the account's other token still works.
        assert (await call(api, "GET", account.url(), token=second_token)).status == 200


async def test_failed_logins_are_rate_limited(couch_url, make_account):
    account = await make_account("Limited")
    limits = {"auth_failure_burst": 3, "auth_failure_refill_per_second": 0}
    async with instance(couch_url, **limits) as client:
        for _ in range(10):
            good = await call(client, "PUT", "/v2/api_auth", data={"api_key": account.api_key})
            assert good.status == 201  # successes never consume attempts
        for _ in range(3):
            bad = await call(client, "PUT", "/v2/api_auth", data={"api_key": "f" * 64})
            assert_kazoo_error(bad, 404, "bad_identifier")
        limited = await call(client, "PUT", "/v2/api_auth", data={"api_key": account.api_key})
        assert assert_kazoo_error(limited, 429, "too_many_requests") == {
            "message": "too many requests"
        }
